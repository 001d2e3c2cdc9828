package signer

import (
	"crypto"
	_ "crypto/md5"  //nolint:gosec // verified (and reported WEAK_ALGORITHM), never signed with
	_ "crypto/sha1" //nolint:gosec // verified, and SHA-1 only where the suite allows it
	_ "crypto/sha256"
	_ "crypto/sha3" // registers SHA3-224/256/384/512 with crypto.Hash
	_ "crypto/sha512"
	"encoding/asn1"
	"strings"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// oidName is an object identifier in dotted form (cms.OID: the type, its
// conversion and comparison, and the identifiers signer shares with
// envelope and tsa are in internal/cms).
type oidName = cms.OID

const (
	// RFC 5652 content types and attributes.
	oidData                      = cms.OIDData
	oidSignedData        oidName = "1.2.840.113549.1.7.2"
	oidAttrContentType   oidName = "1.2.840.113549.1.9.3"
	oidAttrMessageDigest oidName = "1.2.840.113549.1.9.4"
	oidAttrSigningTime   oidName = "1.2.840.113549.1.9.5"

	// RFC 2634 and RFC 5035 (ESS) signing-certificate attributes.
	oidAttrSigningCertificate   = cms.OIDAttrSigningCertificate
	oidAttrSigningCertificateV2 = cms.OIDAttrSigningCertificateV2

	// Digest algorithms (RFC 5754, RFC 3370).
	oidMD5    = cms.OIDMD5
	oidSHA1   = cms.OIDSHA1
	oidSHA224 = cms.OIDSHA224
	oidSHA256 = cms.OIDSHA256
	oidSHA384 = cms.OIDSHA384
	oidSHA512 = cms.OIDSHA512

	// SHA-3 (FIPS 202; NIST CSOR, RFC 8702), recommended by ETSI TS 119 312.
	oidSHA3_224 oidName = "2.16.840.1.101.3.4.2.7"
	oidSHA3_256 oidName = "2.16.840.1.101.3.4.2.8"
	oidSHA3_384 oidName = "2.16.840.1.101.3.4.2.9"
	oidSHA3_512 oidName = "2.16.840.1.101.3.4.2.10"

	// RSA signature algorithms (RFC 8017, RFC 4055).
	oidRSAEncryption         = cms.OIDRSAEncryption
	oidMD5WithRSA    oidName = "1.2.840.113549.1.1.4"
	oidSHA1WithRSA   oidName = "1.2.840.113549.1.1.5"
	oidRSASSAPSS     oidName = "1.2.840.113549.1.1.10"
	oidSHA256WithRSA oidName = "1.2.840.113549.1.1.11"
	oidSHA384WithRSA oidName = "1.2.840.113549.1.1.12"
	oidSHA512WithRSA oidName = "1.2.840.113549.1.1.13"
	oidSHA224WithRSA oidName = "1.2.840.113549.1.1.14"
	oidMGF1                  = cms.OIDMGF1

	// RSA PKCS #1 v1.5 with SHA-3 (NIST CSOR, RFC 8702 4.1 lists
	// id-rsassa-pkcs1-v1_5-with-sha3-*).
	oidRSAWithSHA3_224 oidName = "2.16.840.1.101.3.4.3.13"
	oidRSAWithSHA3_256 oidName = "2.16.840.1.101.3.4.3.14"
	oidRSAWithSHA3_384 oidName = "2.16.840.1.101.3.4.3.15"
	oidRSAWithSHA3_512 oidName = "2.16.840.1.101.3.4.3.16"

	// ECDSA (RFC 5758, RFC 5753). id-ecPublicKey is accepted as a signature
	// algorithm because some older CMS producers write it there.
	oidECPublicKey     oidName = "1.2.840.10045.2.1"
	oidECDSAWithSHA1   oidName = "1.2.840.10045.4.1"
	oidECDSAWithSHA224 oidName = "1.2.840.10045.4.3.1"
	oidECDSAWithSHA256 oidName = "1.2.840.10045.4.3.2"
	oidECDSAWithSHA384 oidName = "1.2.840.10045.4.3.3"
	oidECDSAWithSHA512 oidName = "1.2.840.10045.4.3.4"

	// ECDSA with SHA-3 (NIST CSOR id-ecdsa-with-sha3-*, RFC 8702 3.2).
	oidECDSAWithSHA3_224 oidName = "2.16.840.1.101.3.4.3.9"
	oidECDSAWithSHA3_256 oidName = "2.16.840.1.101.3.4.3.10"
	oidECDSAWithSHA3_384 oidName = "2.16.840.1.101.3.4.3.11"
	oidECDSAWithSHA3_512 oidName = "2.16.840.1.101.3.4.3.12"
)

// OIDSignatureTimeStampToken is the CAdES-T signature-time-stamp unsigned
// attribute (RFC 3161 appendix A, ETSI EN 319 122-1 5.3), the attribute an
// Options.UnsignedAttributes hook is expected to add.
const OIDSignatureTimeStampToken = "1.2.840.113549.1.9.16.2.14"

// validOID reports whether s is a dotted object identifier cms.OID.ASN1
// (through derOIDOf) accepts:
// at least two arcs, each decimal digits without a sign, the first 0-2.
func validOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(s) > 256 {
		return false
	}
	for i, p := range parts {
		if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
		}
		if i == 0 && p != "0" && p != "1" && p != "2" {
			return false
		}
	}
	return true
}

// shortOID renders an identifier for an error message, cut short so hostile
// input with a huge identifier is never echoed whole.
func shortOID(id asn1.ObjectIdentifier) string {
	s := id.String()
	if len(s) > 48 {
		s = s[:48] + "…"
	}
	return s
}

// digestOID is the digest algorithm identifier for a hash.
func digestOID(h crypto.Hash) (oidName, bool) {
	switch h {
	case crypto.SHA256:
		return oidSHA256, true
	case crypto.SHA384:
		return oidSHA384, true
	case crypto.SHA512:
		return oidSHA512, true
	case crypto.SHA224:
		return oidSHA224, true
	case crypto.SHA1:
		return oidSHA1, true
	case crypto.MD5:
		return oidMD5, true
	case crypto.SHA3_224:
		return oidSHA3_224, true
	case crypto.SHA3_256:
		return oidSHA3_256, true
	case crypto.SHA3_384:
		return oidSHA3_384, true
	case crypto.SHA3_512:
		return oidSHA3_512, true
	}
	return "", false
}

// hashFromDigestOID maps a digest algorithm identifier to a hash; 0 when
// unknown.
func hashFromDigestOID(id asn1.ObjectIdentifier) crypto.Hash {
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA224, crypto.SHA1, crypto.MD5,
		crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512, crypto.SHA3_224} {
		if o, _ := digestOID(h); cms.Is(id, o) {
			return h
		}
	}
	return 0
}

// weak reports hashes no longer acceptable for signatures (SHA-1 and MD5
// collisions are practical). They are still verified so the verdict can
// say what else is wrong.
func weak(h crypto.Hash) bool {
	return h == crypto.SHA1 || h == crypto.MD5
}

// ecdsaSignatureOID is the ECDSA signature algorithm for a hash.
func ecdsaSignatureOID(h crypto.Hash) oidName {
	switch h {
	case crypto.SHA256:
		return oidECDSAWithSHA256
	case crypto.SHA384:
		return oidECDSAWithSHA384
	case crypto.SHA512:
		return oidECDSAWithSHA512
	}
	return ""
}
