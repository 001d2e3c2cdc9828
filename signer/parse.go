package signer

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// Limits bound what Parse accepts. They are checked before the work they
// guard: the size before anything else, the nesting while normalising BER,
// and each count before the elements it counts are decoded. A zero field
// takes its default; a negative count allows none.
type Limits struct {
	// MaxBytes bounds the input (default 32 MiB: room for content at the
	// 20 MiB ISDS limit, attached, plus certificates).
	MaxBytes int
	// MaxDepth bounds ASN.1 nesting (default 32; CMS with certificates
	// needs about 12).
	MaxDepth int
	// MaxCertificates bounds the certificates set (default 32).
	MaxCertificates int
	// MaxSigners bounds the SignerInfos (default 8).
	MaxSigners int
	// MaxAttributes bounds the signed and the unsigned attributes of each
	// signer, the values of each attribute and the digestAlgorithms set
	// (default 64).
	MaxAttributes int
	// MaxCRLs bounds the revocation information (default 16).
	MaxCRLs int
	// MaxTimestamps bounds the signature-time-stamp tokens of each signer
	// (CAdES-T unsigned attributes, counted over all of them; default 4).
	// Each token costs a CMS verification and a chain validation, so they
	// are counted while parsing, before any is verified. The attributes of
	// a token are bounded by MaxAttributes when it is parsed in turn.
	MaxTimestamps int
	// MaxTrailingZeros bounds the zero bytes accepted after the
	// ContentInfo (default 64 KiB). Smart-card signers save the fixed-size
	// buffer the card wrote the signature into, and OpenSSL reads such
	// files; any other trailing byte is malformed (docs/security.md,
	// "Real-world material").
	MaxTrailingZeros int
}

// DefaultLimits returns the limits Parse uses.
func DefaultLimits() Limits {
	return Limits{
		MaxBytes:         32 << 20,
		MaxDepth:         32,
		MaxCertificates:  32,
		MaxSigners:       8,
		MaxAttributes:    64,
		MaxCRLs:          16,
		MaxTimestamps:    4,
		MaxTrailingZeros: 64 << 10,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return Limits{
		MaxBytes:         pick(l.MaxBytes, d.MaxBytes),
		MaxDepth:         pick(l.MaxDepth, d.MaxDepth),
		MaxCertificates:  pick(l.MaxCertificates, d.MaxCertificates),
		MaxSigners:       pick(l.MaxSigners, d.MaxSigners),
		MaxAttributes:    pick(l.MaxAttributes, d.MaxAttributes),
		MaxCRLs:          pick(l.MaxCRLs, d.MaxCRLs),
		MaxTimestamps:    pick(l.MaxTimestamps, d.MaxTimestamps),
		MaxTrailingZeros: pick(l.MaxTrailingZeros, d.MaxTrailingZeros),
	}
}

// AlgorithmIdentifier is an X.509 AlgorithmIdentifier.
type AlgorithmIdentifier struct {
	Algorithm asn1.ObjectIdentifier
	// Parameters is the DER of the parameters; nil when absent.
	Parameters []byte
}

// Attribute is a CMS attribute: a type and its values, each value the DER
// of one ASN.1 element.
type Attribute struct {
	Type   asn1.ObjectIdentifier
	Values [][]byte
}

// SignedData is a parsed CMS SignedData (RFC 5652 5.1). Byte slices may
// share memory with the input of Parse.
type SignedData struct {
	Version          int
	DigestAlgorithms []AlgorithmIdentifier
	// ContentType is the eContentType.
	ContentType asn1.ObjectIdentifier
	// Content is the eContent; Detached is set when it is absent.
	Content  []byte
	Detached bool
	// Certificates are the X.509 certificates in the order of the message;
	// other certificate choices (attribute certificates) are skipped.
	Certificates []*x509.Certificate
	// UnparsedCertificates are the X.509 certificates crypto/x509 refuses
	// (real CAs issued some with a BER length inside an extension), as
	// they came. They build no chain; a signer whose certificate is one of
	// them is verified with its public key and gets an INDETERMINATE
	// verdict (CodeCertificateUnreadable) rather than the whole message
	// being malformed.
	UnparsedCertificates []UnparsedCertificate
	// CRLs are the revocation information choices, undecoded.
	CRLs        [][]byte
	SignerInfos []SignerInfo
	// TrailingZeros is how many zero bytes of padding followed the
	// ContentInfo (Limits.MaxTrailingZeros); they were ignored.
	TrailingZeros int
}

// UnparsedCertificate is a certificate crypto/x509 refuses, and why.
type UnparsedCertificate struct {
	Raw []byte
	Err error
}

// SignerInfo is one signer (RFC 5652 5.3).
type SignerInfo struct {
	Version int
	// The signer identifier: issuer and serial number (version 1), or a
	// subject key identifier (version 3).
	Issuer       []byte // DER Name; nil with a subject key identifier
	SerialNumber *big.Int
	SubjectKeyID []byte

	DigestAlgorithm AlgorithmIdentifier
	// Hash is DigestAlgorithm as a crypto.Hash.
	Hash crypto.Hash

	SignedAttrs []Attribute
	// RawSignedAttrs is the DER of the signed attributes with the SET OF
	// tag, as it came; nil when there are none.
	RawSignedAttrs []byte

	SignatureAlgorithm AlgorithmIdentifier
	Signature          []byte
	// UnsignedAttrs hold, for instance, a CAdES-T signature time-stamp.
	UnsignedAttrs []Attribute
}

// Parse parses a CMS ContentInfo holding a SignedData, DER or BER, within
// DefaultLimits.
func Parse(der []byte) (*SignedData, error) {
	return ParseWithLimits(der, Limits{})
}

// ParseWithLimits is Parse with explicit limits.
func ParseWithLimits(der []byte, lim Limits) (*SignedData, error) {
	lim = lim.withDefaults()
	if len(der) > lim.MaxBytes {
		return nil, tooLargef("input of %d bytes exceeds the limit of %d", len(der), lim.MaxBytes)
	}
	if len(der) == 0 {
		return nil, malformedf("empty input")
	}
	in, padding, err := normalisePadded(der, lim.MaxDepth, lim.MaxTrailingZeros)
	if err != nil {
		return nil, err
	}

	s := cryptobyte.String(in)
	var ci, content cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, malformedf("not a ContentInfo")
	}
	if !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, malformedf("ContentInfo: bad content type")
	}
	if !cms.Is(ct, oidSignedData) {
		return nil, malformedf("content type %s is not signed-data", shortOID(ct))
	}
	if !ci.ReadASN1(&content, cbasn1.Tag(0).Constructed().ContextSpecific()) || !ci.Empty() {
		return nil, malformedf("ContentInfo: bad content")
	}
	var body cryptobyte.String
	if !content.ReadASN1(&body, cbasn1.SEQUENCE) || !content.Empty() {
		return nil, malformedf("SignedData is not a SEQUENCE")
	}
	sd, err := parseSignedData(body, lim)
	if err != nil {
		return nil, err
	}
	sd.TrailingZeros = padding
	return sd, nil
}

func parseSignedData(s cryptobyte.String, lim Limits) (*SignedData, error) {
	sd := &SignedData{}
	if !s.ReadASN1Integer(&sd.Version) || sd.Version < 1 || sd.Version > 5 {
		return nil, malformedf("SignedData: bad version")
	}

	var algs cryptobyte.String
	if !s.ReadASN1(&algs, cbasn1.SET) {
		return nil, malformedf("SignedData: bad digestAlgorithms")
	}
	n, err := count(algs, lim.MaxAttributes, "digest algorithms")
	if err != nil {
		return nil, err
	}
	sd.DigestAlgorithms = make([]AlgorithmIdentifier, 0, n)
	for !algs.Empty() {
		a, err := readAlgorithm(&algs)
		if err != nil {
			return nil, within("digestAlgorithms", err)
		}
		sd.DigestAlgorithms = append(sd.DigestAlgorithms, a)
	}

	var eci cryptobyte.String
	if !s.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&sd.ContentType) {
		return nil, malformedf("SignedData: bad encapContentInfo")
	}
	if eci.Empty() {
		sd.Detached = true
	} else {
		var explicit cryptobyte.String
		if !eci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!explicit.ReadASN1Bytes(&sd.Content, cbasn1.OCTET_STRING) || !explicit.Empty() || !eci.Empty() {
			return nil, malformedf("encapContentInfo: bad eContent")
		}
	}

	var certs cryptobyte.String
	var present bool
	if !s.ReadOptionalASN1(&certs, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, malformedf("SignedData: bad certificates")
	}
	if present {
		if sd.Certificates, sd.UnparsedCertificates, err = parseCertificates(certs, lim); err != nil {
			return nil, err
		}
	}

	var crls cryptobyte.String
	if !s.ReadOptionalASN1(&crls, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return nil, malformedf("SignedData: bad crls")
	}
	if present {
		n, err := count(crls, lim.MaxCRLs, "CRLs")
		if err != nil {
			return nil, err
		}
		sd.CRLs = make([][]byte, 0, n)
		for !crls.Empty() {
			var crl cryptobyte.String
			crls.ReadAnyASN1Element(&crl, nil) // count already walked these
			sd.CRLs = append(sd.CRLs, crl)
		}
	}

	var sis cryptobyte.String
	if !s.ReadASN1(&sis, cbasn1.SET) || !s.Empty() {
		return nil, malformedf("SignedData: bad signerInfos")
	}
	if n, err = count(sis, lim.MaxSigners, "signer infos"); err != nil {
		return nil, err
	}
	sd.SignerInfos = make([]SignerInfo, 0, n)
	for i := 1; !sis.Empty(); i++ {
		var si cryptobyte.String
		if !sis.ReadASN1(&si, cbasn1.SEQUENCE) {
			return nil, malformedf("signer info %d: not a SEQUENCE", i)
		}
		info, err := parseSignerInfo(si, lim)
		if err != nil {
			return nil, within(fmt.Sprintf("signer info %d", i), err)
		}
		sd.SignerInfos = append(sd.SignerInfos, info)
	}
	return sd, nil
}

// count walks the elements of a SET or SEQUENCE body without decoding them
// and refuses more than max.
func count(s cryptobyte.String, max int, what string) (int, error) {
	n := 0
	for !s.Empty() {
		var el cryptobyte.String
		if !s.ReadAnyASN1Element(&el, nil) {
			return 0, malformedf("bad element in %s", what)
		}
		n++
		if n > max {
			return 0, tooLargef("more than %d %s", max, what)
		}
	}
	return n, nil
}

func parseCertificates(s cryptobyte.String, lim Limits) ([]*x509.Certificate, []UnparsedCertificate, error) {
	n, err := count(s, lim.MaxCertificates, "certificates")
	if err != nil {
		return nil, nil, err
	}
	certs := make([]*x509.Certificate, 0, n)
	var unparsed []UnparsedCertificate
	for !s.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		s.ReadAnyASN1Element(&el, &tag)
		if tag != cbasn1.SEQUENCE {
			continue // an attribute or other certificate: not used for verification
		}
		c, err := x509.ParseCertificate(el)
		if err != nil {
			// Kept for the signer's public key: refusing the message
			// would turn a readable signature into no verdict at all.
			unparsed = append(unparsed, UnparsedCertificate{Raw: el, Err: err})
			continue
		}
		certs = append(certs, c)
	}
	return certs, unparsed, nil
}

func parseSignerInfo(s cryptobyte.String, lim Limits) (SignerInfo, error) {
	var si SignerInfo
	if !s.ReadASN1Integer(&si.Version) || (si.Version != 1 && si.Version != 3) {
		return si, malformedf("bad version")
	}
	switch {
	case s.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer cryptobyte.String
		si.SerialNumber = new(big.Int)
		if !s.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Integer(si.SerialNumber) || !ias.Empty() {
			return si, malformedf("bad issuerAndSerialNumber")
		}
		si.Issuer = issuer
	case s.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		if !s.ReadASN1Bytes(&si.SubjectKeyID, cbasn1.Tag(0).ContextSpecific()) {
			return si, malformedf("bad subjectKeyIdentifier")
		}
	default:
		return si, malformedf("bad signer identifier")
	}

	var err error
	if si.DigestAlgorithm, err = readAlgorithm(&s); err != nil {
		return si, within("digestAlgorithm", err)
	}
	if si.Hash = hashFromDigestOID(si.DigestAlgorithm.Algorithm); si.Hash == 0 {
		return si, malformedf("unknown digest algorithm %s", shortOID(si.DigestAlgorithm.Algorithm))
	}

	signedTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if s.PeekASN1Tag(signedTag) {
		var el, body cryptobyte.String
		s.ReadASN1Element(&el, signedTag)
		// The signature covers the attributes with their SET OF tag
		// (RFC 5652 5.4), not the IMPLICIT [0] they travel under.
		si.RawSignedAttrs = append([]byte(nil), el...)
		si.RawSignedAttrs[0] = byte(cbasn1.SET)
		set := cryptobyte.String(si.RawSignedAttrs)
		set.ReadASN1(&body, cbasn1.SET)
		if si.SignedAttrs, err = parseAttributes(body, lim, "signed"); err != nil {
			return si, err
		}
	}

	if si.SignatureAlgorithm, err = readAlgorithm(&s); err != nil {
		return si, within("signatureAlgorithm", err)
	}
	if !s.ReadASN1Bytes(&si.Signature, cbasn1.OCTET_STRING) {
		return si, malformedf("bad signature")
	}
	var unsigned cryptobyte.String
	var present bool
	if !s.ReadOptionalASN1(&unsigned, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) || !s.Empty() {
		return si, malformedf("bad unsigned attributes or trailing data")
	}
	if present {
		if si.UnsignedAttrs, err = parseAttributes(unsigned, lim, "unsigned"); err != nil {
			return si, err
		}
	}
	return si, nil
}

func parseAttributes(s cryptobyte.String, lim Limits, kind string) ([]Attribute, error) {
	n, err := count(s, lim.MaxAttributes, kind+" attributes")
	if err != nil {
		return nil, err
	}
	attrs := make([]Attribute, 0, n)
	timestamps := 0
	for i := 1; !s.Empty(); i++ {
		var a, vals cryptobyte.String
		var attr Attribute
		if !s.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&attr.Type) ||
			!a.ReadASN1(&vals, cbasn1.SET) || !a.Empty() {
			return nil, malformedf("%s attribute %d is malformed", kind, i)
		}
		nv, err := count(vals, lim.MaxAttributes, "values of "+kind+" attribute "+shortOID(attr.Type))
		if err != nil {
			return nil, err
		}
		if cms.Is(attr.Type, OIDSignatureTimeStampToken) {
			if timestamps += nv; timestamps > lim.MaxTimestamps {
				return nil, tooLargef("more than %d signature time-stamps", lim.MaxTimestamps)
			}
		}
		attr.Values = make([][]byte, 0, nv)
		for !vals.Empty() {
			var v cryptobyte.String
			vals.ReadAnyASN1Element(&v, nil)
			attr.Values = append(attr.Values, v)
		}
		attrs = append(attrs, attr)
	}
	return attrs, nil
}

// readAlgorithm reads an AlgorithmIdentifier.
func readAlgorithm(s *cryptobyte.String) (AlgorithmIdentifier, error) {
	var a AlgorithmIdentifier
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1ObjectIdentifier(&a.Algorithm) {
		return a, malformedf("bad AlgorithmIdentifier")
	}
	if !seq.Empty() {
		var p cryptobyte.String
		if !seq.ReadAnyASN1Element(&p, nil) || !seq.Empty() {
			return a, malformedf("bad AlgorithmIdentifier parameters")
		}
		a.Parameters = p
	}
	return a, nil
}

// findAttr returns the attribute of the given type and how many there are.
func findAttr(attrs []Attribute, o oidName) (*Attribute, int) {
	var found *Attribute
	n := 0
	for i := range attrs {
		if cms.Is(attrs[i].Type, o) {
			if found == nil {
				found = &attrs[i]
			}
			n++
		}
	}
	return found, n
}
