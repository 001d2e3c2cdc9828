package policy

import (
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
	// CodeCryptoConstraintsNoPOE: the policy's algorithm suite no longer
	// accepts an algorithm at the time judged, and no proof of existence
	// (a time-stamp, or a time the caller asserts) shows it was used while
	// it was suitable (ETSI EN 319 102-1 CRYPTO_CONSTRAINTS_FAILURE_NO_POE).
	CodeCryptoConstraintsNoPOE Code = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
	// CodeFormatFailure: a certificate or CRL that cannot be parsed (EN 319
	// 102-1 FORMAT_FAILURE); the verdict is INVALID.
	CodeFormatFailure Code = "FORMAT_FAILURE"
)
