package policy

import (
	"bytes"
	"crypto/x509"
	"time"
)

// Status is a verdict's main status, after ETSI EN 319 102-1 (passed,
// failed, indeterminate).
type Status string

// Main statuses.
const (
	Valid         Status = "VALID"
	Invalid       Status = "INVALID"
	Indeterminate Status = "INDETERMINATE"
)

// Code is a stable reason code a program may test.
type Code string

// Reason codes. New codes may be added; existing ones never change meaning.
const (
	CodeExpired           Code = "EXPIRED"
	CodeNotYetValid       Code = "NOT_YET_VALID"
	CodeRevoked           Code = "REVOKED"
	CodeUntrustedRoot     Code = "UNTRUSTED_ROOT"
	CodeKeyUsage          Code = "KEY_USAGE"
	CodeWeakAlgorithm     Code = "WEAK_ALGORITHM"
	CodeSignatureMismatch Code = "SIGNATURE_MISMATCH"
	CodeDigestMismatch    Code = "DIGEST_MISMATCH"
	CodeRevocationUnknown Code = "REVOCATION_UNKNOWN"
	CodeMalformed         Code = "MALFORMED"
	CodeSignerNotFound    Code = "SIGNER_CERTIFICATE_MISSING"
	CodeChainInvalid      Code = "CHAIN_INVALID"
)

// Reason explains one finding.
type Reason struct {
	Code    Code
	Message string
}

// Verdict is the outcome of judging a certificate or a signature. It is data,
// not an error: an INVALID verdict is a successful call.
type Verdict struct {
	Status        Status
	Chain         []*x509.Certificate // the path built, leaf first, when one was
	Subject       string              // signer or certificate subject
	SigningTime   time.Time           // claimed signing time, zero when absent
	TimestampTime time.Time           // verified timestamp time, zero when none
	ValidatedAt   time.Time           // the time the chain was judged at
	Policy        string              // the policy applied, when an Engine judged
	// Qualification of a signature made with the certificate (QES,
	// AdES-QC, AdES); empty when the chain did not validate far enough.
	Qualification Qualification
	Reasons       []Reason
	// Overrides lists the per-call overrides of the policy this validation
	// used ("anchors: 1 extra", …); empty when none.
	Overrides []string
	// Used lists the validation objects the verdict relied on besides the
	// chain: CRLs and OCSP responses consulted, time-stamp tokens, the
	// trusted list of the anchor. A validation report (docs/api.md
	// "Validation reports") names each with the hash of its bytes so a
	// later re-validation can use the same ones.
	Used []UsedObject
}

// ObjectKind is the kind of a validation object, after ETSI TS 119 102-2.
type ObjectKind string

// Validation object kinds.
const (
	ObjectCertificate  ObjectKind = "certificate"
	ObjectCRL          ObjectKind = "CRL"
	ObjectOCSPResponse ObjectKind = "OCSPResponse"
	ObjectTimestamp    ObjectKind = "timestamp"
	ObjectTrustedList  ObjectKind = "trustedList"
)

// UsedObject is one validation object a verdict relied on. Raw is its
// encoding (DER; for a trusted list nil, with Digest the SHA-256 of the
// XML document as loaded).
type UsedObject struct {
	Kind   ObjectKind
	Raw    []byte
	Digest []byte // SHA-256 when Raw is nil
	// Time is the object's own time: a CRL's thisUpdate, an OCSP
	// response's producedAt, a token's genTime, a list's issue time.
	Time time.Time
	// Name says more for a person: a trusted list's territory and
	// sequence number, a CRL's issuer.
	Name string
}

// Use records a validation object once.
func (v *Verdict) Use(o UsedObject) {
	for _, u := range v.Used {
		if u.Kind == o.Kind && bytes.Equal(u.Raw, o.Raw) && bytes.Equal(u.Digest, o.Digest) {
			return
		}
	}
	v.Used = append(v.Used, o)
}

// Add records a reason and lowers the status: INVALID wins over
// INDETERMINATE, which wins over VALID.
func (v *Verdict) Add(s Status, c Code, msg string) {
	v.Reasons = append(v.Reasons, Reason{Code: c, Message: msg})
	switch {
	case s == Invalid:
		v.Status = Invalid
	case s == Indeterminate && v.Status != Invalid:
		v.Status = Indeterminate
	case v.Status == "":
		v.Status = s
	}
}

// Reason codes of the RFC 5280 path validation and the qualified policy.
const (
	CodeNameConstraints          Code = "NAME_CONSTRAINTS"
	CodePolicy                   Code = "POLICY"
	CodeUnknownCriticalExtension Code = "UNKNOWN_CRITICAL_EXTENSION"
	CodeNotQualified             Code = "NOT_QUALIFIED"
	CodeMissingQCStatement       Code = "QC_STATEMENT"
	CodePathBound                Code = "PATH_BOUND"
	CodeUnknownPolicy            Code = "UNKNOWN_POLICY"
	CodeTrustedListExpired       Code = "TRUSTED_LIST_EXPIRED"
	// CodeTrustedListQualifier is a note, not a failure: a qualifier of
	// the anchor's trusted-list service decided the qualification.
	CodeTrustedListQualifier Code = "TL_QUALIFIER"
	// CodeCryptoConstraintsNoPOE: the policy's algorithm suite no longer
	// accepts an algorithm at the time judged, and no proof of existence
	// (a time-stamp, or a time the caller asserts) shows it was used while
	// it was suitable (ETSI EN 319 102-1 CRYPTO_CONSTRAINTS_FAILURE_NO_POE).
	CodeCryptoConstraintsNoPOE Code = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
	// CodeFormatFailure: a certificate or CRL that cannot be parsed (EN 319
	// 102-1 FORMAT_FAILURE); the verdict is INVALID.
	CodeFormatFailure Code = "FORMAT_FAILURE"
	// CodeRevokedNoPOE: a signature's signing certificate is revoked and
	// no proof of existence (a signature time-stamp, a time the caller
	// asserts) shows the signature existed before the revocation: it may
	// have been made while the certificate was good, nothing proves it.
	// The verdict is INDETERMINATE (ETSI EN 319 102-1 REVOKED_NO_POE;
	// docs/security.md "Revocation and proof of existence").
	CodeRevokedNoPOE Code = "REVOKED_NO_POE"
	// CodeRevokedCANoPOE: a CA of a signature's path is revoked and no
	// proof of existence shows the signature existed before the
	// revocation (or before the CA's key was compromised). The verdict is
	// INDETERMINATE (ETSI EN 319 102-1 REVOKED_CA_NO_POE; docs/security.md
	// "Revocation and proof of existence").
	CodeRevokedCANoPOE Code = "REVOKED_CA_NO_POE"
)

// Note reports whether a reason with this code is a note that never
// lowers a status (TL_QUALIFIER); a validation report gives it no
// sub-indication.
func (c Code) Note() bool { return c == CodeTrustedListQualifier }
