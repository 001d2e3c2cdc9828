package report

import (
	"github.com/pecet-hsm/pecet/cades"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// SubIndications is THE table from pecet's stable reason codes to the
// ETSI EN 319 102-1 / TS 119 102-2 sub-indications (the NAME of
// urn:etsi:019102:subindication:NAME). docs/api.md "Validation reports"
// shows the same table; TestEveryCodeIsMapped fails when a code pecet
// defines anywhere in the module is missing here.
//
// The main indication follows pecet's verdict status, not the table:
// pecet's rules decide whether a finding fails or is indeterminate (e.g.
// REVOKED at the trusted time is INVALID), and the sub-indication says
// which kind of finding it is.
var SubIndications = map[policy.Code]string{
	policy.CodeExpired:                  "EXPIRED",
	policy.CodeNotYetValid:              "NOT_YET_VALID",
	policy.CodeRevoked:                  "REVOKED",
	policy.CodeUntrustedRoot:            "NO_CERTIFICATE_CHAIN_FOUND",
	policy.CodeKeyUsage:                 "CHAIN_CONSTRAINTS_FAILURE",
	policy.CodeWeakAlgorithm:            "CRYPTO_CONSTRAINTS_FAILURE",
	policy.CodeSignatureMismatch:        "SIG_CRYPTO_FAILURE",
	policy.CodeDigestMismatch:           "HASH_FAILURE",
	policy.CodeRevocationUnknown:        "TRY_LATER",
	policy.CodeMalformed:                "FORMAT_FAILURE",
	policy.CodeSignerNotFound:           "NO_SIGNING_CERTIFICATE_FOUND",
	policy.CodeChainInvalid:             "CERTIFICATE_CHAIN_GENERAL_FAILURE",
	policy.CodeNameConstraints:          "CHAIN_CONSTRAINTS_FAILURE",
	policy.CodePolicy:                   "CHAIN_CONSTRAINTS_FAILURE",
	policy.CodeUnknownCriticalExtension: "CHAIN_CONSTRAINTS_FAILURE",
	policy.CodeNotQualified:             "CHAIN_CONSTRAINTS_FAILURE",
	policy.CodeMissingQCStatement:       "CHAIN_CONSTRAINTS_FAILURE",
	policy.CodePathBound:                "CERTIFICATE_CHAIN_GENERAL_FAILURE",
	policy.CodeUnknownPolicy:            "POLICY_PROCESSING_ERROR",
	policy.CodeTrustedListExpired:       "TRY_LATER",
	policy.CodeCryptoConstraintsNoPOE:   "CRYPTO_CONSTRAINTS_FAILURE_NO_POE",
	policy.CodeFormatFailure:            "FORMAT_FAILURE",
	policy.CodeRevokedNoPOE:             "REVOKED_NO_POE",
	policy.CodeRevokedCANoPOE:           "REVOKED_CA_NO_POE",
	policy.CodeOverrideForbidden:        "POLICY_PROCESSING_ERROR",
	// A note (policy.Code.Note), never written as a sub-indication.
	policy.CodeTrustedListQualifier:       "GENERIC",
	signer.CodeContentMismatch:            "HASH_FAILURE",
	signer.CodeUnsupportedAlgorithm:       "CRYPTO_CONSTRAINTS_FAILURE",
	signer.CodeCertificateUnreadable:      "FORMAT_FAILURE",
	signer.CodeSigningCertificateMismatch: "NO_SIGNING_CERTIFICATE_FOUND",
	tsa.CodeNonceMismatch:                 "SIG_CONSTRAINTS_FAILURE",
	tsa.CodeOutOfBoundsNoPOE:              "OUT_OF_BOUNDS_NO_POE",
	// Long-term verification (docs/archive.md "CAdES augmentation"): a
	// changed byte under an archive time-stamp is a hash failure; one
	// that proves nothing leaves the proof of existence missing.
	cades.CodeArchiveTimestamp:       "HASH_FAILURE",
	cades.CodeArchiveTimestampUnused: "NO_POE",
}

// Generic is the sub-indication of a code the table lacks (none, while
// TestEveryCodeIsMapped passes).
const Generic = "GENERIC"

// SubIndication is the ETSI sub-indication name for a reason code.
func SubIndication(c policy.Code) string {
	if s, ok := SubIndications[c]; ok {
		return s
	}
	return Generic
}
