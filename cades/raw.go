package cades

import (
	"encoding/asn1"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
	"github.com/pecet-hsm/pecet/signer"
)

// rawSignedData is a SignedData split into the encodings augmentation
// keeps byte for byte (everything a signature covers) and the parts it
// changes: the certificates and crls fields and the unsigned attributes.
type rawSignedData struct {
	version, digestAlgs, encap []byte // TLVs as they came
	eContentType               []byte // TLV of encapContentInfo.eContentType
	certs, crls                [][]byte
	signers                    []rawSigner
}

type rawSigner struct {
	// fields are version, sid, digestAlgorithm, signedAttrs,
	// signatureAlgorithm and signature, as TLVs (EN 319 122-1 5.5.3 item 3).
	fields [][]byte
	attrs  []rawAttr // unsigned attributes, in the order of the message
}

type rawAttr struct {
	oid    asn1.ObjectIdentifier
	typ    []byte   // TLV of attrType
	values [][]byte // TLV of each value
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// splitSignedData checks der with signer's bounded parser (size, depth,
// counts) and splits its DER form. BER input (OpenSSL streaming) is
// normalised first, as signer does; the result is DER.
func splitSignedData(der []byte, lim signer.Limits) (*signer.SignedData, *rawSignedData, error) {
	sd, err := signer.ParseWithLimits(der, lim)
	if err != nil {
		return nil, nil, err
	}
	d := signer.DefaultLimits()
	if lim.MaxDepth > 0 {
		d.MaxDepth = lim.MaxDepth
	}
	if lim.MaxTrailingZeros != 0 {
		d.MaxTrailingZeros = max(lim.MaxTrailingZeros, 0)
	}
	// The same normalisation signer applied, so the split is of the bytes
	// it verified.
	in, _, err := cms.NormaliseBERPadded(der, d.MaxDepth, d.MaxTrailingZeros)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	s := cryptobyte.String(in)
	var ci, wrap, body cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&ct) || !ct.Equal(oidSignedData) ||
		!ci.ReadASN1(&wrap, cbasn1.Tag(0).Constructed().ContextSpecific()) || !wrap.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, nil, malformed("not a ContentInfo with a SignedData")
	}
	r := &rawSignedData{}
	var el cryptobyte.String
	if !body.ReadASN1Element(&el, cbasn1.INTEGER) {
		return nil, nil, malformed("SignedData version")
	}
	r.version = el
	if !body.ReadASN1Element(&el, cbasn1.SET) {
		return nil, nil, malformed("SignedData digestAlgorithms")
	}
	r.digestAlgs = el
	if !body.ReadASN1Element(&el, cbasn1.SEQUENCE) {
		return nil, nil, malformed("SignedData encapContentInfo")
	}
	r.encap = el
	inner := cryptobyte.String(el)
	var encBody cryptobyte.String
	var ctEl cryptobyte.String
	if !inner.ReadASN1(&encBody, cbasn1.SEQUENCE) || !encBody.ReadASN1Element(&ctEl, cbasn1.OBJECT_IDENTIFIER) {
		return nil, nil, malformed("encapContentInfo eContentType")
	}
	r.eContentType = ctEl
	for _, f := range []struct {
		tag cbasn1.Tag
		out *[][]byte
	}{{cbasn1.Tag(0).Constructed().ContextSpecific(), &r.certs}, {cbasn1.Tag(1).Constructed().ContextSpecific(), &r.crls}} {
		var set cryptobyte.String
		var present bool
		if !body.ReadOptionalASN1(&set, &present, f.tag) {
			return nil, nil, malformed("SignedData certificates or crls")
		}
		for !set.Empty() {
			if !set.ReadAnyASN1Element(&el, nil) {
				return nil, nil, malformed("SignedData certificates or crls element")
			}
			*f.out = append(*f.out, el)
		}
	}
	var sis cryptobyte.String
	if !body.ReadASN1(&sis, cbasn1.SET) || !body.Empty() {
		return nil, nil, malformed("SignedData signerInfos")
	}
	for !sis.Empty() {
		var si cryptobyte.String
		if !sis.ReadASN1(&si, cbasn1.SEQUENCE) {
			return nil, nil, malformed("SignerInfo")
		}
		var rs rawSigner
		for !si.Empty() {
			var tag cbasn1.Tag
			var elBody cryptobyte.String
			if !si.ReadAnyASN1Element(&el, &tag) {
				return nil, nil, malformed("SignerInfo field")
			}
			if tag == cbasn1.Tag(1).Constructed().ContextSpecific() {
				if !si.Empty() {
					return nil, nil, malformed("SignerInfo: fields after unsignedAttrs")
				}
				e := cryptobyte.String(el)
				if !e.ReadASN1(&elBody, tag) {
					return nil, nil, malformed("unsignedAttrs")
				}
				attrs, err := splitAttrs(elBody)
				if err != nil {
					return nil, nil, err
				}
				rs.attrs = attrs
				continue
			}
			rs.fields = append(rs.fields, el)
		}
		r.signers = append(r.signers, rs)
	}
	if len(r.signers) != len(sd.SignerInfos) {
		return nil, nil, malformed("signer infos disagree with the parser")
	}
	return sd, r, nil
}

func splitAttrs(s cryptobyte.String) ([]rawAttr, error) {
	var out []rawAttr
	for !s.Empty() {
		var a, typ, vals cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !s.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1Element(&typ, cbasn1.OBJECT_IDENTIFIER) || !a.ReadASN1(&vals, cbasn1.SET) || !a.Empty() {
			return nil, malformed("unsigned attribute")
		}
		t := typ
		if !t.ReadASN1ObjectIdentifier(&oid) {
			return nil, malformed("unsigned attribute type")
		}
		ra := rawAttr{oid: oid, typ: typ}
		for !vals.Empty() {
			var v cryptobyte.String
			if !vals.ReadAnyASN1Element(&v, nil) {
				return nil, malformed("unsigned attribute value")
			}
			ra.values = append(ra.values, v)
		}
		out = append(out, ra)
	}
	return out, nil
}

// encode writes the SignedData back as a DER ContentInfo.
func (r *rawSignedData) encode() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddBytes(r.version)
				b.AddBytes(r.digestAlgs)
				b.AddBytes(r.encap)
				if len(r.certs) > 0 {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						for _, c := range r.certs {
							b.AddBytes(c)
						}
					})
				}
				if len(r.crls) > 0 {
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						for _, c := range r.crls {
							b.AddBytes(c)
						}
					})
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, s := range r.signers {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, f := range s.fields {
								b.AddBytes(f)
							}
							if len(s.attrs) > 0 {
								b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
									for _, a := range s.attrs {
										b.AddBytes(a.encode())
									}
								})
							}
						})
					}
				})
			})
		})
	})
	return b.Bytes()
}

func (a rawAttr) encode() []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(a.typ)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			for _, v := range a.values {
				b.AddBytes(v)
			}
		})
	})
	out, _ := b.Bytes() // only appends TLVs read before
	return out
}

func newAttr(oid asn1.ObjectIdentifier, values ...[]byte) rawAttr {
	typ, _ := asn1.Marshal(oid)
	return rawAttr{oid: oid, typ: typ, values: values}
}

// find returns the unsigned attributes of one type.
func (s *rawSigner) find(oid asn1.ObjectIdentifier) []rawAttr {
	var out []rawAttr
	for _, a := range s.attrs {
		if a.oid.Equal(oid) {
			out = append(out, a)
		}
	}
	return out
}

// without drops the unsigned attributes of one type.
func (s *rawSigner) without(oid asn1.ObjectIdentifier) {
	out := s.attrs[:0]
	for _, a := range s.attrs {
		if !a.oid.Equal(oid) {
			out = append(out, a)
		}
	}
	s.attrs = out
}

// signatureValue is the OCTET STRING content of the signature field.
func (s *rawSigner) signatureValue() []byte {
	if len(s.fields) == 0 {
		return nil
	}
	v := cryptobyte.String(s.fields[len(s.fields)-1])
	var out cryptobyte.String
	if !v.ReadASN1(&out, cbasn1.OCTET_STRING) {
		return nil
	}
	return out
}
