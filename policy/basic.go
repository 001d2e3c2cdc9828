package policy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Purpose is what a certificate is judged for.
type Purpose string

// Purposes.
const (
	PurposeSigning      Purpose = "signing"
	PurposeEncryption   Purpose = "encryption"
	PurposeTimestamping Purpose = "timestamping"
	PurposeAny          Purpose = "any"
)

// Request asks for a certificate to be judged.
type Request struct {
	Leaf          *x509.Certificate
	Intermediates []*x509.Certificate
	Purpose       Purpose
	// At is the trusted time to judge at: the chain's validity and
	// whether a revocation counts. Zero means the validator's clock
	// (Engine.Now, Basic.Now), never Now below.
	At time.Time

	// Policy names the policy to judge under; "" is the default. Basic
	// ignores it.
	Policy string
	// Anchors and CRLs are extra trust anchors and CRLs for this request
	// only (docs/security.md "Per-call overrides").
	Anchors []*x509.Certificate
	CRLs    []*CRL
	// EmbeddedCRLs are CRLs the signature itself carries (CAdES
	// revocation-values, the SignedData crls field). They are used as
	// CRLs are, but are no per-call override: the signer embedded them,
	// each is checked against its CA like any other (docs/security.md
	// "CAdES augmentation"). Basic ignores them.
	EmbeddedCRLs []*CRL
	// Now, when set, is the time the revocation data's currency is judged
	// at instead of the engine's clock: the time a proof of existence
	// (an archive time-stamp) shows the data existed, so a validation is
	// the one that could be made then (docs/archive.md "CAdES
	// augmentation"). It judges the CRLs' and OCSP responses' currency
	// (fetched ones included) and nothing else: the default At and the
	// trusted list's freshness follow the engine's clock
	// (docs/security.md "Revocation and proof of existence"). Library
	// callers only; the server never takes it from a request. Basic
	// ignores it.
	Now time.Time
	// Revocation overrides the policy's revocation mode when set.
	Revocation RevocationMode
	// Context bounds network fetches (CRL distribution points, OCSP);
	// nil means context.Background.
	Context context.Context
	// KeyCompromiseAnyTime counts a revocation for keyCompromise even
	// when it is dated after At: a compromised key could have made
	// anything dated before its revocation (a TSA's tokens, RFC 3161 4.1;
	// docs/security.md "Time-stamps"). Basic ignores it.
	KeyCompromiseAnyTime bool
	// Signature, when set, says the leaf is a signature's signing
	// certificate and what is known of the signature's time: a
	// revocation of the leaf or of a CA of its path is then judged
	// against the signature's proof of existence, after ETSI EN 319 102-1
	// (REVOKED_NO_POE, REVOKED_CA_NO_POE; docs/security.md
	// "Revocation and proof of existence"). Ignored with
	// KeyCompromiseAnyTime. Basic ignores it.
	Signature *SignatureTime
}

// SignatureTime is what is known of when a signature was made.
type SignatureTime struct {
	// POE: Request.At is a proof of existence of the signature (a
	// verified signature time-stamp's time, a time the caller asserts).
	// False: At is only the time of the validation (now).
	POE bool
	// Claimed is the signing-time the signer claims (zero: none). It is
	// no proof: it can only make a verdict worse, never better.
	Claimed time.Time
}

// Validator judges a certificate chain. It is the seam where the accredited-CA
// policy engine plugs in; Basic is the foundation's implementation.
type Validator interface {
	Validate(Request) Verdict
}

// Basic validates with crypto/x509 against a pool of trust anchors at the
// requested time. It knows no revocation and no certificate policies.
type Basic struct {
	Roots *x509.CertPool
	Now   func() time.Time
}

// Validate implements Validator.
func (b Basic) Validate(r Request) Verdict {
	v := Verdict{Status: Valid}
	if r.Leaf == nil {
		v.Add(Indeterminate, CodeSignerNotFound, "no certificate to validate")
		return v
	}
	v.Subject = r.Leaf.Subject.String()
	at := r.At
	if at.IsZero() {
		if b.Now != nil {
			at = b.Now()
		} else {
			at = time.Now()
		}
	}
	v.ValidatedAt = at
	if b.Roots == nil {
		v.Add(Indeterminate, CodeUntrustedRoot, "no trust anchors are configured")
		return v
	}
	inter := x509.NewCertPool()
	for _, c := range r.Intermediates {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         b.Roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     ekuFor(r.Purpose),
	}
	chains, err := r.Leaf.Verify(opts)
	if err != nil {
		st, code := classify(err, r.Leaf, at)
		v.Add(st, code, err.Error())
		return v
	}
	v.Chain = chains[0]
	if !keyUsageFits(r.Leaf, r.Purpose) {
		v.Add(Invalid, CodeKeyUsage, fmt.Sprintf("certificate key usage does not allow %s", r.Purpose))
	}
	return v
}

func ekuFor(p Purpose) []x509.ExtKeyUsage {
	switch p {
	case PurposeTimestamping:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}
	default:
		// Signing and encryption certificates of Czech qualified CAs carry
		// e-mail protection or no EKU at all; any is accepted here and the
		// key usage bits decide.
		return []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
}

func keyUsageFits(c *x509.Certificate, p Purpose) bool {
	if c.KeyUsage == 0 {
		return true // no extension: no restriction (RFC 5280 4.2.1.3)
	}
	switch p {
	case PurposeSigning, PurposeTimestamping:
		return c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) != 0
	case PurposeEncryption:
		return c.KeyUsage&(x509.KeyUsageKeyEncipherment|x509.KeyUsageKeyAgreement) != 0
	}
	return true
}

func classify(err error, leaf *x509.Certificate, at time.Time) (Status, Code) {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			if at.Before(leaf.NotBefore) {
				return Invalid, CodeNotYetValid
			}
			return Invalid, CodeExpired
		case x509.IncompatibleUsage:
			return Invalid, CodeKeyUsage
		}
		return Invalid, CodeChainInvalid
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return Indeterminate, CodeUntrustedRoot
	}
	var ia x509.InsecureAlgorithmError
	if errors.As(err, &ia) {
		return Invalid, CodeWeakAlgorithm
	}
	return Invalid, CodeChainInvalid
}
