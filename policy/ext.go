package policy

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"net"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Extensions crypto/x509 does not parse (or parses without what RFC 5280
// section 6 needs), read here from the raw extension values.

var (
	oidExtNameConstraints   = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidExtSubjectAltName    = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtCRLDistPoints     = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidExtIssuingDistPoint  = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidExtDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidExtCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidExtAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtFreshestCRL       = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidExtCertificateIssuer = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidExtReasonCode        = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidExtInvalidityDate    = asn1.ObjectIdentifier{2, 5, 29, 24}
)

var errBadExtension = errors.New("malformed extension")

// GeneralName tags (RFC 5280 4.2.1.6).
const (
	gnOther     = 0
	gnRFC822    = 1
	gnDNS       = 2
	gnDirectory = 4
	gnURI       = 6
	gnIP        = 7
)

// generalName is one GeneralName: its choice tag and its content (for a
// directoryName, the DER Name inside the explicit tag).
type generalName struct {
	tag   int
	value []byte
}

// key is a comparable form, for matching distribution point names.
func (g generalName) key() string {
	switch g.tag {
	case gnDirectory:
		return "dn:" + nameKey(g.value)
	case gnURI, gnDNS, gnRFC822:
		return string(rune('0'+g.tag)) + ":" + strings.ToLower(string(g.value))
	}
	return string(rune('0'+g.tag)) + ":" + string(g.value)
}

func readGeneralNames(s cryptobyte.String) ([]generalName, error) {
	var out []generalName
	for !s.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !s.ReadAnyASN1(&el, &tag) {
			return nil, errBadExtension
		}
		if tag&0xc0 != 0x80 { // context-specific only
			return nil, errBadExtension
		}
		n := int(tag & 0x1f)
		if n == gnDirectory {
			var name cryptobyte.String
			if !el.ReadASN1Element(&name, cbasn1.SEQUENCE) || !el.Empty() {
				return nil, errBadExtension
			}
			el = name
		}
		out = append(out, generalName{tag: n, value: []byte(el)})
		if len(out) > maxNamesPerExtension {
			return nil, errBadExtension
		}
	}
	return out, nil
}

// maxNamesPerExtension bounds the work a hostile certificate can cause in
// name-constraint matching (names × subtrees).
const maxNamesPerExtension = 1024

func findExt(exts []asnExt, oid asn1.ObjectIdentifier) (asnExt, bool) {
	for _, e := range exts {
		if e.ID.Equal(oid) {
			return e, true
		}
	}
	return asnExt{}, false
}

// asnExt mirrors pkix.Extension so that certificates and CRLs share code.
type asnExt struct {
	ID       asn1.ObjectIdentifier
	Critical bool
	Value    []byte
}

// subjectAltNames reads the SAN extension, including directoryName entries
// that crypto/x509 drops.
func subjectAltNames(c *x509.Certificate) ([]generalName, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidExtSubjectAltName) {
			s := cryptobyte.String(e.Value)
			var seq cryptobyte.String
			if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
				return nil, errBadExtension
			}
			return readGeneralNames(seq)
		}
	}
	return nil, nil
}

// subtree is one GeneralSubtree base (minimum and maximum are not used in
// this profile: RFC 5280 requires minimum 0 and no maximum).
type subtree = generalName

// nameConstraintsExt reads the name constraints extension.
func nameConstraintsExt(c *x509.Certificate) (permitted, excluded []subtree, present bool, err error) { //nolint:unparam // present tells an absent extension from an empty one; path.go needs only the lists today
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidExtNameConstraints) {
			continue
		}
		present = true
		s := cryptobyte.String(e.Value)
		var seq cryptobyte.String
		if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
			return nil, nil, true, errBadExtension
		}
		read := func(tag cbasn1.Tag) ([]subtree, error) {
			var trees cryptobyte.String
			var ok bool
			if !seq.ReadOptionalASN1(&trees, &ok, tag) {
				return nil, errBadExtension
			}
			var out []subtree
			for ok && !trees.Empty() {
				var st cryptobyte.String
				if !trees.ReadASN1(&st, cbasn1.SEQUENCE) {
					return nil, errBadExtension
				}
				gn, err := readGeneralNames(readFirst(&st))
				if err != nil || len(gn) != 1 {
					return nil, errBadExtension
				}
				out = append(out, gn[0])
				if len(out) > maxNamesPerExtension {
					return nil, errBadExtension
				}
			}
			return out, nil
		}
		if permitted, err = read(cbasn1.Tag(0).ContextSpecific().Constructed()); err != nil {
			return nil, nil, true, err
		}
		if excluded, err = read(cbasn1.Tag(1).ContextSpecific().Constructed()); err != nil {
			return nil, nil, true, err
		}
		if !seq.Empty() {
			return nil, nil, true, errBadExtension
		}
	}
	return permitted, excluded, present, nil
}

// readFirst takes the first element of s (with its header) as a one-element
// string, leaving the rest in s.
func readFirst(s *cryptobyte.String) cryptobyte.String {
	var el cryptobyte.String
	if !s.ReadAnyASN1Element(&el, nil) {
		return nil
	}
	return el
}

// distributionPoint is a CRL distribution point (of a certificate) or the
// issuing distribution point of a CRL, reduced to what CRL scope checks use.
type distributionPoint struct {
	names       []generalName // fullName
	relative    rdn           // nameRelativeToCRLIssuer, when used
	hasName     bool
	reasons     uint16 // 0 means all reasons
	crlIssuer   []generalName
	onlyUser    bool
	onlyCA      bool
	onlyAttr    bool
	indirectCRL bool
}

var (
	tagCtx0C = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagCtx1C = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagCtx2C = cbasn1.Tag(2).ContextSpecific().Constructed()
)

func readDPName(s cryptobyte.String, dp *distributionPoint) error {
	dp.hasName = true
	var inner cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&inner, &tag) || !s.Empty() {
		return errBadExtension
	}
	switch tag {
	case tagCtx0C:
		names, err := readGeneralNames(inner)
		if err != nil {
			return err
		}
		dp.names = names
	case tagCtx1C:
		r, _, err := parseRDNSet(inner)
		if err != nil {
			return errBadExtension
		}
		dp.relative = r
	default:
		return errBadExtension
	}
	return nil
}

func readReasons(s cryptobyte.String) (uint16, error) {
	if len(s) < 1 || len(s) > 3 || s[0] > 7 {
		return 0, errBadExtension
	}
	var v uint16
	for i, b := range s[1:] {
		for bit := 0; bit < 8; bit++ {
			if b&(0x80>>bit) != 0 {
				v |= 1 << (i*8 + bit)
			}
		}
	}
	if v == 0 {
		return 0, errBadExtension
	}
	return v, nil
}

// crlDistributionPoints reads a certificate's CRL distribution points.
func crlDistributionPoints(c *x509.Certificate) ([]distributionPoint, error) {
	e, ok := findExt(certExts(c), oidExtCRLDistPoints)
	if !ok {
		return nil, nil
	}
	s := cryptobyte.String(e.Value)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, errBadExtension
	}
	var out []distributionPoint
	for !seq.Empty() {
		var d cryptobyte.String
		if !seq.ReadASN1(&d, cbasn1.SEQUENCE) {
			return nil, errBadExtension
		}
		var dp distributionPoint
		var v cryptobyte.String
		var ok bool
		if !d.ReadOptionalASN1(&v, &ok, tagCtx0C) {
			return nil, errBadExtension
		}
		if ok {
			if err := readDPName(v, &dp); err != nil {
				return nil, err
			}
		}
		if !d.ReadOptionalASN1(&v, &ok, cbasn1.Tag(1).ContextSpecific()) {
			return nil, errBadExtension
		}
		if ok {
			r, err := readReasons(v)
			if err != nil {
				return nil, err
			}
			dp.reasons = r
		}
		if !d.ReadOptionalASN1(&v, &ok, tagCtx2C) {
			return nil, errBadExtension
		}
		if ok {
			names, err := readGeneralNames(v)
			if err != nil {
				return nil, err
			}
			dp.crlIssuer = names
		}
		if !d.Empty() {
			return nil, errBadExtension
		}
		out = append(out, dp)
		if len(out) > 64 {
			return nil, errBadExtension
		}
	}
	return out, nil
}

// issuingDistributionPoint reads a CRL's IDP extension.
func issuingDistributionPoint(value []byte) (distributionPoint, error) {
	var dp distributionPoint
	s := cryptobyte.String(value)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return dp, errBadExtension
	}
	var v cryptobyte.String
	var ok bool
	if !seq.ReadOptionalASN1(&v, &ok, tagCtx0C) {
		return dp, errBadExtension
	}
	if ok {
		if err := readDPName(v, &dp); err != nil {
			return dp, err
		}
	}
	boolField := func(n uint8) (bool, error) {
		var b cryptobyte.String
		var present bool
		if !seq.ReadOptionalASN1(&b, &present, cbasn1.Tag(n).ContextSpecific()) {
			return false, errBadExtension
		}
		if !present {
			return false, nil
		}
		if len(b) != 1 {
			return false, errBadExtension
		}
		return b[0] != 0, nil
	}
	var err error
	if dp.onlyUser, err = boolField(1); err != nil {
		return dp, err
	}
	if dp.onlyCA, err = boolField(2); err != nil {
		return dp, err
	}
	if !seq.ReadOptionalASN1(&v, &ok, cbasn1.Tag(3).ContextSpecific()) {
		return dp, errBadExtension
	}
	if ok {
		if dp.reasons, err = readReasons(v); err != nil {
			return dp, err
		}
	}
	if dp.indirectCRL, err = boolField(4); err != nil {
		return dp, err
	}
	if dp.onlyAttr, err = boolField(5); err != nil {
		return dp, err
	}
	if !seq.Empty() {
		return dp, errBadExtension
	}
	return dp, nil
}

func certExts(c *x509.Certificate) []asnExt {
	out := make([]asnExt, len(c.Extensions))
	for i, e := range c.Extensions {
		out[i] = asnExt{ID: e.Id, Critical: e.Critical, Value: e.Value}
	}
	return out
}

// ipInNet reports whether ip lies in the constraint c (address followed by
// mask, 8 or 32 bytes).
func ipInNet(ip net.IP, c []byte) bool {
	if len(c) != 2*len(ip) {
		if v4 := ip.To4(); v4 != nil && len(c) == 8 {
			ip = v4
		} else {
			return false
		}
	}
	n := len(ip)
	for i := 0; i < n; i++ {
		if ip[i]&c[n+i] != c[i]&c[n+i] {
			return false
		}
	}
	return true
}
