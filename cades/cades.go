package cades

import (
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/pecet-hsm/pecet/policy"
)

// Sentinel errors (errors.Is); the server maps them to gRPC codes.
var (
	// ErrMalformed: a CAdES attribute (certificate-values,
	// revocation-values, archive-time-stamp-v3, ats-hash-index-v3) is not
	// well-formed within its bounds.
	ErrMalformed = errors.New("cades: malformed CAdES attribute")
	// ErrTooLarge: an attribute exceeds a parsing bound (counts, bytes).
	ErrTooLarge = errors.New("cades: CAdES attribute exceeds its limits")
	// ErrNotValid: LT and LTA need the signature VALID under the named
	// policy now (revocation required); it was not, so nothing is
	// embedded.
	ErrNotValid = errors.New("cades: the signature is not VALID now, nothing to preserve")
	// ErrUnsupported: a signature pecet does not augment (more than one
	// signer, a level it does not know).
	ErrUnsupported = errors.New("cades: unsupported augmentation")
	// ErrContentNeeded: an archive time-stamp of a detached signature
	// covers the content: give it, or its SHA-256 digest.
	ErrContentNeeded = errors.New("cades: the archive time-stamp of a detached signature needs the content or its SHA-256 digest")
)

// Level is a CAdES baseline level (ETSI EN 319 122-1 6).
type Level string

// Levels, as a verdict names them.
const (
	LevelNone Level = ""
	LevelB    Level = "CAdES-BASELINE-B"
	LevelT    Level = "CAdES-BASELINE-T"
	LevelLT   Level = "CAdES-BASELINE-LT"
	LevelLTA  Level = "CAdES-BASELINE-LTA"
)

func (l Level) rank() int {
	switch l {
	case LevelB:
		return 1
	case LevelT:
		return 2
	case LevelLT:
		return 3
	case LevelLTA:
		return 4
	}
	return 0
}

// ParseLevel reads "t", "lt", "lta" (any case) or a full level name.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "t", "T", string(LevelT):
		return LevelT, nil
	case "lt", "LT", string(LevelLT):
		return LevelLT, nil
	case "lta", "LTA", string(LevelLTA):
		return LevelLTA, nil
	}
	return "", fmt.Errorf("%w: level %q (t, lt, lta)", ErrUnsupported, s)
}

// Reason codes of long-term verification.
const (
	// CodeArchiveTimestamp: an archive time-stamp does not match what it
	// covers (its hash index names an element no longer in the signature,
	// or its imprint differs): something covered was changed. INVALID.
	CodeArchiveTimestamp policy.Code = "ARCHIVE_TIMESTAMP_MISMATCH"
	// CodeArchiveTimestampUnused: an archive time-stamp that is not used
	// as a proof (unreadable, no hash index, its TSA not valid when
	// judged); reported only when the verdict is not VALID anyway.
	CodeArchiveTimestampUnused policy.Code = "ARCHIVE_TIMESTAMP_UNUSED"
	// CodeOutOfBoundsNoPOE: the signer's certificate had expired by the
	// validation time and no valid archive time-stamp proves the
	// validation material existed before (ETSI EN 319 102-1
	// OUT_OF_BOUNDS_NO_POE). INDETERMINATE.
	CodeOutOfBoundsNoPOE policy.Code = "OUT_OF_BOUNDS_NO_POE"
)

// Object identifiers (ETSI EN 319 122-1 5.3, 5.5; RFC 5126 6.3).
var (
	oidSigTimeStamp     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	oidCertValues       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 23}
	oidRevocationValues = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 24}
	oidArchiveTSv3      = asn1.ObjectIdentifier{0, 4, 0, 1733, 2, 4}
	oidATSHashIndexV3   = asn1.ObjectIdentifier{0, 4, 0, 19122, 1, 5}
	oidSHA256           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512           = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	oidSignedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// Bounds of the CAdES attributes, checked while parsing before the work
// they guard (docs/security.md "CAdES augmentation").
const (
	// MaxCertValues bounds the certificates of certificate-values.
	MaxCertValues = 32
	// MaxRevocationValues bounds the CRLs and OCSP responses of
	// revocation-values, each.
	MaxRevocationValues = 32
	// MaxArchiveTimestamps bounds the archive time-stamps of a signer:
	// each costs a CMS verification and a chain validation.
	MaxArchiveTimestamps = 16
	// MaxHashIndexEntries bounds each list of an ats-hash-index-v3.
	MaxHashIndexEntries = 256
	// MaxValueBytes bounds one attribute value (a token, a CRL).
	MaxValueBytes = 4 << 20
)

func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}
