package keystore

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
)

// meta is what the token's attributes cannot say about an alias: purpose
// (SIGN and TIMESTAMP keys look the same to PKCS#11), algorithm, which
// version is primary, each version's state and creation time. It is kept as
// a small JSON document in one CKO_DATA object per alias, so that several
// processes sharing the token agree on it and nothing lives off the token.
//
// Tokens may refuse to modify a data object's CKA_VALUE (SoftHSM 2.6 does,
// CKR_ATTRIBUTE_READ_ONLY), so an update writes a new object with the next
// Generation and then destroys the old one. A reader that finds two (a crash
// or another process between the two steps) takes the higher generation.
type meta struct {
	Format     int           `json:"format"`
	Generation int           `json:"generation"`
	Purpose    Purpose       `json:"purpose"`
	Algorithm  Algorithm     `json:"algorithm"`
	Primary    int           `json:"primary,omitempty"`
	Versions   []metaVersion `json:"versions"`
	// Nonce is random per write: it tells apart two objects of the same
	// generation written by two racing replicas, and orders them the same
	// way for every reader (pickMeta).
	Nonce string `json:"nonce,omitempty"`
}

type metaVersion struct {
	Version int       `json:"version"`
	State   State     `json:"state"`
	Created time.Time `json:"created"`
	// NeverPrimary marks a version made by this release that has not yet
	// been the alias's primary. Dual control admits a version by an
	// approved set-primary (docs/security.md "Dual control"); a record
	// without the field (older metadata) counts as admitted.
	NeverPrimary bool `json:"never_primary,omitempty"`
	// PublicSHA256 is the SHA-256 of the key pair's SubjectPublicKeyInfo at
	// generation or import: the metadata is private, so a process without
	// login cannot change it, while it can replace a public key object.
	PublicSHA256 string `json:"public_sha256,omitempty"`
	// Chain is the SHA-256 (hex) of each certificate of the version's
	// chain, leaf first, as ImportCertificate committed it: readers take
	// these certificate objects and no others, so a chain is in force only
	// together with the metadata that names it (docs/security.md
	// "Importing a certificate"). Empty for a version never certified by
	// this release (older metadata: the certificate objects decide).
	Chain []string `json:"chain,omitempty"`
}

const metaFormat = 1

func (m *meta) marshal() ([]byte, error) { return json.Marshal(m) }

func parseMeta(b []byte) (*meta, error) {
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("keystore: metadata object: %w", err)
	}
	if m.Format != metaFormat {
		return nil, fmt.Errorf("keystore: metadata object format %d, want %d", m.Format, metaFormat)
	}
	return &m, nil
}

func (m *meta) version(v int) *metaVersion {
	for i := range m.Versions {
		if m.Versions[i].Version == v {
			return &m.Versions[i]
		}
	}
	return nil
}

// setPrimary makes v the primary; from then on it has been primary.
func (m *meta) setPrimary(v *metaVersion) {
	m.Primary = v.Version
	v.NeverPrimary = false
}

func (m *meta) lastVersion() int {
	last := 0
	for _, v := range m.Versions {
		last = max(last, v.Version)
	}
	return last
}

// Aliases become CKA_LABEL values and, in dev mode, file names
// (DIR/<alias>.pem): hence a small alphabet with no '/' and no leading dot.
// 64 characters fit the object-label limits of the HSMs we know.
var aliasRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func checkAlias(alias string) error {
	if !aliasRE.MatchString(alias) {
		return fmt.Errorf("%w: %q", ErrInvalidAlias, alias)
	}
	return nil
}

func checkPurposeAlgorithm(p Purpose, a Algorithm) error {
	switch p {
	case PurposeSign, PurposeTimestamp, PurposeDecrypt, PurposeAudit:
	default:
		return fmt.Errorf("%w: %q", ErrInvalidPurpose, p)
	}
	switch a {
	case RSA2048, RSA3072, RSA4096:
	case ECP256, ECP384:
		if p == PurposeDecrypt {
			// No ECDH key agreement in pecet: ČSSZ filings use RSA key transport.
			return fmt.Errorf("%w: %s cannot decrypt", ErrUnsupportedAlgorithm, a)
		}
	default:
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, a)
	}
	return nil
}

func rsaBits(a Algorithm) int {
	switch a {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	}
	return 0
}

// CheckAlias returns ErrInvalidAlias unless alias is a valid key alias
// (^[a-z0-9][a-z0-9._-]{0,63}$), for callers that validate before asking
// the token (dual-control requests).
func CheckAlias(alias string) error { return checkAlias(alias) }

// CheckPurposeAlgorithm returns ErrInvalidPurpose or ErrUnsupportedAlgorithm
// unless CreateKey would accept the pair.
func CheckPurposeAlgorithm(p Purpose, a Algorithm) error { return checkPurposeAlgorithm(p, a) }
