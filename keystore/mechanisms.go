package keystore

import (
	"crypto"

	"github.com/miekg/pkcs11"
)

// Capabilities is what the token lists in C_GetMechanismList, read once at
// Open. A listed mechanism may still refuse some parameters: SoftHSM 2.6
// lists CKM_RSA_PKCS_OAEP but accepts only SHA-1 for it (see
// KeyDecrypter.SupportsOAEP).
type Capabilities struct {
	RSAPKCS1v15 bool // CKM_RSA_PKCS: PKCS#1 v1.5 signatures and decryption
	RSAPSS      bool // CKM_RSA_PKCS_PSS
	RSAOAEP     bool // CKM_RSA_PKCS_OAEP, with at least SHA-1
	RSARaw      bool // CKM_RSA_X_509: raw RSA, for KeyDecrypter.DecryptRaw
	ECDSA       bool // CKM_ECDSA over a precomputed digest
}

func capabilitiesOf(mechs []*pkcs11.Mechanism) Capabilities {
	var c Capabilities
	for _, m := range mechs {
		switch m.Mechanism {
		case pkcs11.CKM_RSA_PKCS:
			c.RSAPKCS1v15 = true
		case pkcs11.CKM_RSA_PKCS_PSS:
			c.RSAPSS = true
		case pkcs11.CKM_RSA_PKCS_OAEP:
			c.RSAOAEP = true
		case pkcs11.CKM_RSA_X_509:
			c.RSARaw = true
		case pkcs11.CKM_ECDSA:
			c.ECDSA = true
		}
	}
	return c
}

// hashInfo maps a Go hash to its PKCS#11 digest mechanism and MGF1 variant,
// and to the DER DigestInfo prefix PKCS#1 v1.5 signatures wrap the digest
// in (RFC 8017 §9.2, note 1): CKM_RSA_PKCS signs the DigestInfo we pass it.
type hashInfo struct {
	mech, mgf uint
	prefix    []byte
}

var hashes = map[crypto.Hash]hashInfo{
	// SHA-1 only for verifying and decrypting legacy data (OAEP-SHA1 is the
	// one OAEP SoftHSM offers); policy refuses SHA-1 signatures elsewhere.
	crypto.SHA1: {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1,
		[]byte{0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224,
		[]byte{0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c}},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256,
		[]byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384,
		[]byte{0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512,
		[]byte{0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
}

// oaepParams identifies one OAEP parameter choice the token may or may not
// accept.
type oaepParams struct{ hash, mgf crypto.Hash }

func (s *Store) oaepKnown(p oaepParams) (ok, known bool) {
	s.oaepMu.Lock()
	defer s.oaepMu.Unlock()
	ok, known = s.oaep[p]
	return ok, known
}

func (s *Store) oaepLearn(p oaepParams, ok bool) {
	s.oaepMu.Lock()
	s.oaep[p] = ok
	s.oaepMu.Unlock()
}
