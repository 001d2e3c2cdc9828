package cades

import (
	"crypto"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Material is the validation material of a CAdES-LT signature, each item
// as its DER.
type Material struct {
	Certificates [][]byte
	CRLs         [][]byte
	// OCSP are BasicOCSPResponse encodings (RFC 5126 6.3.4 ocspVals).
	OCSP [][]byte
}

// readSeqOf reads a SEQUENCE OF (or the body of a tagged one) into at most
// max element TLVs, each at most MaxValueBytes.
func readElements(s cryptobyte.String, max int, what string) ([][]byte, error) {
	var out [][]byte
	for !s.Empty() {
		if len(out) == max {
			return nil, tooLarge("%s: more than %d elements", what, max)
		}
		var el cryptobyte.String
		if !s.ReadAnyASN1Element(&el, nil) {
			return nil, malformed("%s: bad element", what)
		}
		if len(el) > MaxValueBytes {
			return nil, tooLarge("%s: an element of %d bytes", what, len(el))
		}
		out = append(out, el)
	}
	return out, nil
}

// ParseCertValues reads a CertificateValues value (SEQUENCE OF
// Certificate, RFC 5126 6.3.3) within MaxCertValues.
func ParseCertValues(v []byte) ([][]byte, error) {
	s := cryptobyte.String(v)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, malformed("certificate-values is not a SEQUENCE")
	}
	return readElements(body, MaxCertValues, "certificate-values")
}

// ParseRevocationValues reads a RevocationValues value (RFC 5126 6.3.4):
// crlVals [0] and ocspVals [1]; otherRevVals [2] is refused.
func ParseRevocationValues(v []byte) (Material, error) {
	s := cryptobyte.String(v)
	var body cryptobyte.String
	var m Material
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return m, malformed("revocation-values is not a SEQUENCE")
	}
	for _, f := range []struct {
		tag cbasn1.Tag
		out *[][]byte
	}{{cbasn1.Tag(0).Constructed().ContextSpecific(), &m.CRLs}, {cbasn1.Tag(1).Constructed().ContextSpecific(), &m.OCSP}} {
		var wrap, seq cryptobyte.String
		var present bool
		if !body.ReadOptionalASN1(&wrap, &present, f.tag) {
			return m, malformed("revocation-values field")
		}
		if !present {
			continue
		}
		if !wrap.ReadASN1(&seq, cbasn1.SEQUENCE) || !wrap.Empty() {
			return m, malformed("revocation-values: not a SEQUENCE OF")
		}
		els, err := readElements(seq, MaxRevocationValues, "revocation-values")
		if err != nil {
			return m, err
		}
		*f.out = els
	}
	if !body.Empty() {
		return m, malformed("revocation-values: otherRevVals or trailing data (not supported)")
	}
	return m, nil
}

func encodeCertValues(certs [][]byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, c := range certs {
			b.AddBytes(c)
		}
	})
	out, _ := b.Bytes()
	return out
}

func encodeRevocationValues(m Material) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for i, list := range [][][]byte{m.CRLs, m.OCSP} {
			if len(list) == 0 {
				continue
			}
			b.AddASN1(cbasn1.Tag(uint8(i)).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, c := range list {
						b.AddBytes(c)
					}
				})
			})
		}
	})
	out, _ := b.Bytes()
	return out
}

// HashIndex is an ATSHashIndexV3 (ETSI EN 319 122-1 5.5.2): the hashes of
// the SignedData's certificates and crls and of the signer's unsigned
// attribute values when the archive time-stamp was made.
type HashIndex struct {
	Hash         crypto.Hash
	Certificates [][]byte
	CRLs         [][]byte
	// UnsignedAttrValues: one hash of attrType||value for each value of
	// each unsigned attribute.
	UnsignedAttrValues [][]byte
}

func hashOID(h crypto.Hash) asn1.ObjectIdentifier {
	switch h {
	case crypto.SHA384:
		return oidSHA384
	case crypto.SHA512:
		return oidSHA512
	}
	return oidSHA256
}

func hashFromOID(o asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case o.Equal(oidSHA256):
		return crypto.SHA256
	case o.Equal(oidSHA384):
		return crypto.SHA384
	case o.Equal(oidSHA512):
		return crypto.SHA512
	}
	return 0
}

func (x HashIndex) encode() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if x.Hash != crypto.SHA256 { // DEFAULT {algorithm id-sha256}: omitted in DER
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(hashOID(x.Hash)) })
		}
		for _, list := range [][][]byte{x.Certificates, x.CRLs, x.UnsignedAttrValues} {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, h := range list {
					b.AddASN1OctetString(h)
				}
			})
		}
	})
	out, _ := b.Bytes()
	return out
}

// ParseHashIndex reads an ATSHashIndexV3 value within MaxHashIndexEntries
// per list; only SHA-256, SHA-384 and SHA-512 are accepted.
func ParseHashIndex(v []byte) (HashIndex, error) {
	x := HashIndex{Hash: crypto.SHA256}
	s := cryptobyte.String(v)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return x, malformed("ats-hash-index-v3 is not a SEQUENCE")
	}
	if body.PeekASN1Tag(cbasn1.SEQUENCE) {
		// Either the AlgorithmIdentifier or, when it is omitted, the
		// first list: an AlgorithmIdentifier starts with an OID.
		peek := body
		var first cryptobyte.String
		if peek.ReadASN1(&first, cbasn1.SEQUENCE) && first.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
			var oid asn1.ObjectIdentifier
			if !first.ReadASN1ObjectIdentifier(&oid) {
				return x, malformed("ats-hash-index-v3 hashIndAlgorithm")
			}
			if !first.Empty() && !first.PeekASN1Tag(cbasn1.NULL) {
				return x, malformed("ats-hash-index-v3 hashIndAlgorithm parameters")
			}
			if x.Hash = hashFromOID(oid); x.Hash == 0 {
				return x, malformed("ats-hash-index-v3: hash algorithm %s not supported", oid)
			}
			body = peek
		}
	}
	for _, out := range []*[][]byte{&x.Certificates, &x.CRLs, &x.UnsignedAttrValues} {
		var seq cryptobyte.String
		if !body.ReadASN1(&seq, cbasn1.SEQUENCE) {
			return x, malformed("ats-hash-index-v3 list")
		}
		for !seq.Empty() {
			if len(*out) == MaxHashIndexEntries {
				return x, tooLarge("ats-hash-index-v3: more than %d hashes in a list", MaxHashIndexEntries)
			}
			var h cryptobyte.String
			if !seq.ReadASN1(&h, cbasn1.OCTET_STRING) || len(h) != x.Hash.Size() {
				return x, malformed("ats-hash-index-v3: a hash that is not a %v OCTET STRING", x.Hash)
			}
			*out = append(*out, h)
		}
	}
	if !body.Empty() {
		return x, malformed("ats-hash-index-v3: trailing data")
	}
	return x, nil
}

func sum(h crypto.Hash, parts ...[]byte) []byte {
	d := h.New()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// hashIndexOf computes the index of a signer as it stands (EN 319 122-1
// 5.5.2).
func hashIndexOf(r *rawSignedData, s *rawSigner, h crypto.Hash) HashIndex {
	x := HashIndex{Hash: h}
	for _, c := range r.certs {
		x.Certificates = append(x.Certificates, sum(h, c))
	}
	for _, c := range r.crls {
		x.CRLs = append(x.CRLs, sum(h, c))
	}
	for _, a := range s.attrs {
		for _, v := range a.values {
			x.UnsignedAttrValues = append(x.UnsignedAttrValues, sum(h, a.typ, v))
		}
	}
	return x
}

// missing returns what an index lists that the signer no longer holds: an
// element covered by an archive time-stamp was changed or removed.
func (x HashIndex) missing(now HashIndex) string {
	for _, c := range []struct {
		what      string
		old, have [][]byte
	}{{"certificate", x.Certificates, now.Certificates}, {"CRL", x.CRLs, now.CRLs}, {"unsigned attribute value", x.UnsignedAttrValues, now.UnsignedAttrValues}} {
		have := make(map[string]bool, len(c.have))
		for _, g := range c.have {
			have[string(g)] = true
		}
		for _, h := range c.old {
			if !have[string(h)] {
				return c.what
			}
		}
	}
	return ""
}
