package tsa

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/pecet-hsm/pecet/internal/cms"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// Reason codes of a token verdict besides the policy and signer ones.
const (
	// CodeNonceMismatch: the token does not carry the nonce the request sent.
	CodeNonceMismatch policy.Code = "NONCE_MISMATCH"
	// CodeOutOfBoundsNoPOE: a certificate of the TSA's path had expired by
	// the validation time and nothing proves the token existed while it
	// was valid (ETSI EN 319 102-1 OUT_OF_BOUNDS_NO_POE): the token is no
	// proof of existence. Judge at an earlier time (--at) that another
	// proof covers, e.g. an archive time-stamp.
	CodeOutOfBoundsNoPOE policy.Code = "OUT_OF_BOUNDS_NO_POE"
)

// ErrNoImprint: Verify needs the time-stamped data or its digest, unless
// VerifyOptions.NoImprint says the token alone is checked.
var ErrNoImprint = errors.New("tsa: verifying a token needs the time-stamped data or its digest")

// oidTSTInfo is the content type of a time-stamp token (RFC 3161 2.4.2,
// id-ct-TSTInfo); the identifiers tsa shares with signer (the ESS
// signing-certificate attributes) are in internal/cms.
var oidTSTInfo = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}

// VerifyOptions say what a token is checked against.
type VerifyOptions struct {
	// Validator judges the TSA certificate's chain for
	// policy.PurposeTimestamping; nil gives INDETERMINATE (no anchors). It
	// should be the policy engine (policy.Engine) that judges the
	// signatures too: its anchors, trusted-list services and algorithm
	// rules apply to tokens as to signatures (docs/security.md
	// "Time-stamps").
	Validator policy.Validator
	// Policy carries the policy name, per-call anchors and CRLs, the
	// revocation mode and the context: the same as the signature's when
	// the token is a signature time-stamp. Leaf, Intermediates, Purpose
	// and At are filled in by Verify.
	Policy policy.Request
	// TSACertificates are known TSA certificates (and their issuers): a
	// token without embedded certificates is verified with these.
	TSACertificates []*x509.Certificate
	// Data is what was time-stamped (hashed with the token's hash), or
	// Digest with DigestHash its digest. One is required unless NoImprint.
	Data       []byte
	Digest     []byte
	DigestHash crypto.Hash
	// NoImprint checks the token alone (signature, chain, genTime): the
	// verdict then says nothing about what was time-stamped, and the
	// caller reports the imprint (TSTInfo.Hash, TSTInfo.Digest).
	NoImprint bool
	// Nonce, when the request sent one, must be in the token.
	Nonce *big.Int
	// At is the validation time the TSA's chain is judged at; zero means
	// now. Never the token's own genTime: a key whose certificate expired
	// or was revoked could mint tokens dated in its lifetime (ETSI EN 319
	// 102-1 5.4). A revocation for keyCompromise counts whatever its date.
	At time.Time
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Verify checks a DER TimeStampToken and returns its content and a
// verdict, whose TimestampTime is the genTime. Only a malformed token is an
// error; a bad signature, an untrusted TSA, a wrong imprint or nonce are
// verdicts.
func Verify(token []byte, opts VerifyOptions) (*TSTInfo, policy.Verdict, error) {
	if opts.Data == nil && opts.Digest == nil && !opts.NoImprint {
		return nil, policy.Verdict{}, ErrNoImprint
	}
	t, err := ReadToken(token)
	if err != nil {
		return nil, policy.Verdict{}, err
	}
	v, err := t.Verify(opts)
	if err != nil {
		return nil, policy.Verdict{}, err
	}
	return t.Info, v, nil
}

// Token is a time-stamp token parsed once: read (Info) and then verified
// (Token.Verify) without parsing its bytes again.
type Token struct {
	// DER is the token as given.
	DER []byte
	// Info is its content, not verified until Verify says so.
	Info *TSTInfo
	sd   *signer.SignedData
}

// ReadToken parses a DER TimeStampToken (bounded as Verify bounds it)
// without verifying anything.
func ReadToken(token []byte) (*Token, error) {
	sd, info, err := parseToken(token)
	if err != nil {
		return nil, err
	}
	return &Token{DER: token, Info: info, sd: sd}, nil
}

// SignedData is the token's CMS structure as read (its unsigned
// attributes, say); the caller must not change it.
func (t *Token) SignedData() *signer.SignedData { return t.sd }

// Verify is tsa.Verify of a token already read: the verdict on the token
// under opts, whose TimestampTime is the genTime.
func (t *Token) Verify(opts VerifyOptions) (policy.Verdict, error) {
	if opts.Data == nil && opts.Digest == nil && !opts.NoImprint {
		return policy.Verdict{}, ErrNoImprint
	}
	sd, info := t.sd, t.Info
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	at := opts.At
	if at.IsZero() {
		at = now()
	}
	var val policy.Validator
	if opts.Validator != nil {
		val = tokenValidator{opts.Validator}
	}
	req := opts.Policy
	req.KeyCompromiseAnyTime = true
	rep, err := signer.VerifyParsed(sd, signer.VerifyOptions{
		Validator:         val,
		Policy:            req,
		At:                at,
		Now:               now,
		Purpose:           policy.PurposeTimestamping,
		ExtraCertificates: opts.TSACertificates,
	})
	if err != nil {
		return policy.Verdict{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	v := rep.Verdict
	v.TimestampTime = info.GenTime

	// RFC 3161 2.4.1 requires an ESS signing-certificate attribute (RFC
	// 5816: or -v2); signer.Verify compares it with the certificate when
	// present, here its absence is the finding.
	hasESS := false
	for _, a := range sd.SignerInfos[0].SignedAttrs {
		if cms.Is(a.Type, cms.OIDAttrSigningCertificate) || cms.Is(a.Type, cms.OIDAttrSigningCertificateV2) {
			hasESS = true
		}
	}
	if !hasESS {
		v.Add(policy.Invalid, signer.CodeSigningCertificateMismatch, "the token has no ESS signing-certificate(-v2) attribute naming the TSA certificate")
	}
	if len(v.Chain) > 0 {
		c := v.Chain[0]
		if err := checkEKU(c); err != nil {
			v.Add(policy.Invalid, policy.CodeKeyUsage, err.Error())
		}
		// The chain is judged at the validation time, so the token's own
		// date must lie in the TSA certificate's lifetime: a key that
		// outlived its certificate signs nothing valid.
		if info.GenTime.Before(c.NotBefore) || info.GenTime.After(c.NotAfter) {
			v.Add(policy.Invalid, policy.CodeExpired, fmt.Sprintf("the token's genTime %s lies outside the TSA certificate's validity (%s to %s)",
				info.GenTime.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339)))
		}
	}

	switch {
	case info.Hash == 0:
		v.Add(policy.Invalid, policy.CodeWeakAlgorithm, "the token's imprint uses an unknown hash "+shortOID(info.HashOID))
	case info.Hash == crypto.SHA1 || info.Hash == crypto.MD5:
		v.Add(policy.Invalid, policy.CodeWeakAlgorithm, fmt.Sprintf("the token's imprint uses %v, too weak", info.Hash))
	case opts.Data != nil:
		h := info.Hash.New()
		h.Write(opts.Data)
		if !bytes.Equal(h.Sum(nil), info.Digest) {
			v.Add(policy.Invalid, policy.CodeDigestMismatch, "the token's message imprint is not the digest of the data")
		}
	case opts.Digest != nil:
		dh := opts.DigestHash
		if dh == 0 {
			dh = crypto.SHA256
		}
		if dh != info.Hash {
			v.Add(policy.Invalid, policy.CodeDigestMismatch, fmt.Sprintf("the token's imprint uses %v, the digest given is %v", info.Hash, dh))
		} else if !bytes.Equal(opts.Digest, info.Digest) {
			v.Add(policy.Invalid, policy.CodeDigestMismatch, "the token's message imprint differs from the digest given")
		}
	}
	if opts.Nonce != nil && (info.Nonce == nil || info.Nonce.Cmp(opts.Nonce) != 0) {
		v.Add(policy.Invalid, CodeNonceMismatch, "the token does not carry the nonce of the request")
	}
	return v, nil
}

// tokenValidator judges a TSA's chain with the caller's validator and
// reads an expiry at the validation time as ETSI EN 319 102-1 does: the
// token is not shown false, it just proves nothing without an earlier
// proof of existence (INDETERMINATE, OUT_OF_BOUNDS_NO_POE).
type tokenValidator struct{ inner policy.Validator }

func (t tokenValidator) Validate(r policy.Request) policy.Verdict {
	v := t.inner.Validate(r)
	if v.Status != policy.Invalid {
		return v
	}
	expired := false
	for _, x := range v.Reasons {
		switch x.Code {
		case policy.CodeExpired:
			expired = true
		case policy.CodeRevocationUnknown:
		default:
			return v // something else is wrong: the verdict stands
		}
	}
	if !expired {
		return v
	}
	out := v
	out.Status, out.Reasons = policy.Valid, nil
	for _, x := range v.Reasons {
		if x.Code == policy.CodeExpired {
			out.Add(policy.Indeterminate, CodeOutOfBoundsNoPOE, x.Message+" before the validation time; without an earlier proof of existence the token proves nothing")
		} else {
			out.Reasons = append(out.Reasons, x) // warnings that did not lower the verdict
		}
	}
	return out
}

// ParseToken reads a TimeStampToken's TSTInfo without verifying anything:
// for display, or to read a nonce before Verify.
func ParseToken(token []byte) (*TSTInfo, error) {
	_, info, err := parseToken(token)
	return info, err
}

func parseToken(token []byte) (*signer.SignedData, *TSTInfo, error) {
	if len(token) > maxResponseBytes {
		return nil, nil, fmt.Errorf("%w: token larger than 1 MiB", ErrMalformed)
	}
	sd, err := signer.Parse(token)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !sd.ContentType.Equal(oidTSTInfo) || sd.Detached || len(sd.SignerInfos) != 1 {
		return nil, nil, fmt.Errorf("%w: not a time-stamp token (one signer over an attached TSTInfo)", ErrMalformed)
	}
	info, err := ParseTSTInfo(sd.Content)
	if err != nil {
		return nil, nil, err
	}
	return sd, info, nil
}

// checkEKU is CheckCertificate's usage half, for certificates of other TSAs.
func checkEKU(c *x509.Certificate) error {
	if err := CheckCertificate(c, c.PublicKey); err != nil {
		if errors.Is(err, ErrCertificateMismatch) {
			return nil // a key type without Equal: the chain check covered the EKU
		}
		return err
	}
	return nil
}

// Verifier verifies CAdES-T signature time-stamps for signer.Verify
// (signer.TimestampVerifier): the token's imprint must be the digest of
// the SignerInfo's signature value, and its TSA is judged under the same
// policy, per-call anchors and validation time as the signature.
type Verifier struct {
	Validator       policy.Validator
	Policy          policy.Request
	TSACertificates []*x509.Certificate
	// At is the validation time (the caller's); zero means now.
	At  time.Time
	Now func() time.Time
}

// VerifyTimestamp implements signer.TimestampVerifier.
func (tv Verifier) VerifyTimestamp(token, signatureValue []byte) (time.Time, policy.Verdict, error) {
	return tv.VerifyTimestampWithCertificates(token, signatureValue, nil)
}

// VerifyTimestampWithCertificates implements
// signer.TimestampVerifierWithCertificates: the signature's certificates
// are offered to path building (and the signer search) after the token's
// own and the configured TSA certificates.
func (tv Verifier) VerifyTimestampWithCertificates(token, signatureValue []byte, certs []*x509.Certificate) (time.Time, policy.Verdict, error) {
	extra := append(slices.Clip(tv.TSACertificates), certs...)
	info, v, err := Verify(token, VerifyOptions{
		Validator: tv.Validator, Policy: tv.Policy, TSACertificates: extra,
		At: tv.At, Now: tv.Now, Data: signatureValue,
	})
	if err != nil {
		return time.Time{}, v, err
	}
	return info.GenTime, v, nil
}

var (
	_ signer.TimestampVerifier                 = Verifier{}
	_ signer.TimestampVerifierWithCertificates = Verifier{}
)
