package envelope

import (
	"encoding/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// Object identifiers. Functions rather than package variables, so nobody
// can modify a shared slice; the ones signer and tsa use too are in
// internal/cms (their ASN1 is shared: callers only read it).
var (
	oidData              = cms.OIDData.ASN1
	oidEnvelopedData     = func() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3} }
	oidAuthEnvelopedData = func() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 23} }

	oidRSAEncryption = cms.OIDRSAEncryption.ASN1
	oidRSAESOAEP     = func() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 7} }
	oidMGF1          = cms.OIDMGF1.ASN1
	oidPSpecified    = func() asn1.ObjectIdentifier { return asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 9} }
	oidSHA1          = cms.OIDSHA1.ASN1
	oidSHA256        = cms.OIDSHA256.ASN1
	oidSHA384        = cms.OIDSHA384.ASN1
	oidSHA512        = cms.OIDSHA512.ASN1
)

// cipherOID maps content ciphers to their RFC 3565 / RFC 5084 identifiers.
func cipherOID(c Cipher) asn1.ObjectIdentifier {
	aes := func(n int) asn1.ObjectIdentifier { return asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, n} }
	switch c {
	case AES128CBC:
		return aes(2)
	case AES192CBC:
		return aes(22)
	case AES256CBC:
		return aes(42)
	case AES128GCM:
		return aes(6)
	case AES192GCM:
		return aes(26)
	case AES256GCM:
		return aes(46)
	}
	return nil
}

func cipherFromOID(id asn1.ObjectIdentifier) (Cipher, bool) {
	for _, c := range []Cipher{AES128CBC, AES192CBC, AES256CBC, AES128GCM, AES192GCM, AES256GCM} {
		if id.Equal(cipherOID(c)) {
			return c, true
		}
	}
	return "", false
}
