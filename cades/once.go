package cades

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"time"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// onceVerifier verifies each signature time-stamp of one Verify call once:
// cades needs the tokens' times before it judges the signer's chain, and
// signer's verification needs their verdicts for the report; both read
// the one result, so the call's work budget pays for each token once
// (docs/security.md "Work budget per verification"). Not for concurrent
// use: one call's.
type onceVerifier struct {
	inner tsa.Verifier
	done  map[[32]byte]onceResult
}

type onceResult struct {
	at  time.Time
	v   policy.Verdict
	err error
}

// timestampVerifier is what both verifications of one call use.
type timestampVerifier interface {
	signer.TimestampVerifier
	signer.TimestampVerifierWithCertificates
}

// shareTimestamps makes the call's verifier; TestSharedTimestampsSameResult
// swaps in the verifier that verifies each time it is asked (what Verify
// did before) to show the verdicts are the same.
var shareTimestamps = func(inner tsa.Verifier) timestampVerifier { return newOnceVerifier(inner) }

func newOnceVerifier(inner tsa.Verifier) *onceVerifier {
	return &onceVerifier{inner: inner, done: map[[32]byte]onceResult{}}
}

// VerifyTimestamp implements signer.TimestampVerifier.
func (o *onceVerifier) VerifyTimestamp(token, signatureValue []byte) (time.Time, policy.Verdict, error) {
	return o.VerifyTimestampWithCertificates(token, signatureValue, nil)
}

// VerifyTimestampWithCertificates implements
// signer.TimestampVerifierWithCertificates: the same token over the same
// signature value with the same certificates is verified once.
func (o *onceVerifier) VerifyTimestampWithCertificates(token, signatureValue []byte, certs []*x509.Certificate) (time.Time, policy.Verdict, error) {
	k := onceKey(token, signatureValue, certs)
	if r, ok := o.done[k]; ok {
		return r.at, r.v, r.err
	}
	at, v, err := o.inner.VerifyTimestampWithCertificates(token, signatureValue, certs)
	o.done[k] = onceResult{at, v, err}
	return at, v, err
}

// onceKey names one verification by everything it depends on besides the
// verifier's fixed options, each part length-prefixed.
func onceKey(token, signatureValue []byte, certs []*x509.Certificate) [32]byte {
	h := sha256.New()
	var n [8]byte
	part := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	part(token)
	part(signatureValue)
	binary.BigEndian.PutUint64(n[:], uint64(len(certs)))
	h.Write(n[:])
	for _, c := range certs {
		part(c.Raw)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

var (
	_ signer.TimestampVerifier                 = (*onceVerifier)(nil)
	_ signer.TimestampVerifierWithCertificates = (*onceVerifier)(nil)
)
