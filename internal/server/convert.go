package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
)

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func derChain(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, 0, len(chain))
	for _, c := range chain {
		out = append(out, c.Raw)
	}
	return out
}

var statusProto = map[policy.Status]pecetv1.Verdict_Status{
	policy.Valid:         pecetv1.Verdict_VALID,
	policy.Invalid:       pecetv1.Verdict_INVALID,
	policy.Indeterminate: pecetv1.Verdict_INDETERMINATE,
}

func verdictProto(v policy.Verdict) *pecetv1.Verdict {
	out := &pecetv1.Verdict{
		Status:        statusProto[v.Status],
		Subject:       v.Subject,
		SigningTime:   ts(v.SigningTime),
		TimestampTime: ts(v.TimestampTime),
		ValidatedAt:   ts(v.ValidatedAt),
		Chain:         derChain(v.Chain),
		Policy:        v.Policy,
		Qualification: string(v.Qualification),
		Overrides:     v.Overrides,
	}
	for _, r := range v.Reasons {
		out.Reasons = append(out.Reasons, &pecetv1.Reason{Code: string(r.Code), Message: r.Message})
	}
	return out
}

var purposeProto = map[keystore.Purpose]pecetv1.KeyPurpose{
	keystore.PurposeSign:      pecetv1.KeyPurpose_SIGN,
	keystore.PurposeDecrypt:   pecetv1.KeyPurpose_DECRYPT,
	keystore.PurposeTimestamp: pecetv1.KeyPurpose_TIMESTAMP,
}

var algorithmProto = map[keystore.Algorithm]pecetv1.KeyAlgorithm{
	keystore.RSA2048: pecetv1.KeyAlgorithm_RSA_2048,
	keystore.RSA3072: pecetv1.KeyAlgorithm_RSA_3072,
	keystore.RSA4096: pecetv1.KeyAlgorithm_RSA_4096,
	keystore.ECP256:  pecetv1.KeyAlgorithm_EC_P256,
	keystore.ECP384:  pecetv1.KeyAlgorithm_EC_P384,
}

var stateProto = map[keystore.State]pecetv1.KeyState{
	keystore.StatePendingCertificate: pecetv1.KeyState_PENDING_CERTIFICATE,
	keystore.StateEnabled:            pecetv1.KeyState_ENABLED,
	keystore.StateDisabled:           pecetv1.KeyState_DISABLED,
	keystore.StateDestroyed:          pecetv1.KeyState_DESTROYED,
}

func keyProto(k keystore.Key) *pecetv1.Key {
	out := &pecetv1.Key{
		Alias:          k.Alias,
		Purpose:        purposeProto[k.Purpose],
		Algorithm:      algorithmProto[k.Algorithm],
		PrimaryVersion: uint32(k.PrimaryVersion),
	}
	if k.Err != nil {
		// A fixed text: the cause (PKCS#11 details) is in the server log.
		out.Problem = "the alias cannot be read from the token; the server log has the details"
	}
	for _, v := range k.Versions {
		pv := &pecetv1.KeyVersion{
			Version: uint32(v.Version),
			State:   stateProto[v.State],
			Primary: v.Primary,
			Created: ts(v.CreatedAt),
			Problem: v.Problem,
		}
		if spki, err := x509.MarshalPKIXPublicKey(v.Public); err == nil {
			sum := sha256.Sum256(spki)
			pv.PublicKeySha256 = hex.EncodeToString(sum[:])
		}
		if c := v.Certificate(); c != nil {
			pv.CertificateSubject = c.Subject.String()
			pv.CertificateChain = derChain(v.Chain)
			pv.NotBefore = timestamppb.New(c.NotBefore)
			pv.NotAfter = timestamppb.New(c.NotAfter)
			sum := sha256.Sum256(c.Raw)
			pv.CertificateSha256 = hex.EncodeToString(sum[:])
		}
		out.Versions = append(out.Versions, pv)
	}
	return out
}
