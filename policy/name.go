package policy

import (
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"unicode/utf16"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// errBadName is returned for a distinguished name that is not DER we can read.
var errBadName = errors.New("malformed distinguished name")

// rdn is one relative distinguished name: its attributes in canonical form,
// sorted, so that multi-valued RDNs compare as sets.
type rdn []string

// dn is a distinguished name as a sequence of canonical RDNs, for comparing
// names the way RFC 5280 section 7.1 asks: attribute values of string types
// compare case-insensitively with insignificant white space collapsed, and
// the RDN order matters.
type dn []rdn

func (d dn) key() string {
	var b strings.Builder
	for _, r := range d {
		b.WriteString(strings.Join(r, "+"))
		b.WriteByte('/')
	}
	return b.String()
}

// hasPrefix reports whether p is a leading part of d (name constraints on
// directory names, RFC 5280 4.2.1.10).
func (d dn) hasPrefix(p dn) bool {
	if len(p) > len(d) {
		return false
	}
	for i := range p {
		if strings.Join(p[i], "+") != strings.Join(d[i], "+") {
			return false
		}
	}
	return true
}

// oidEmailAddress is the PKCS #9 emailAddress attribute, which RFC 5280
// 4.2.1.10 subjects to rfc822Name constraints.
const oidEmailAddress = "1.2.840.113549.1.9.1"

// parseDN parses DER Name into canonical form and also returns the values of
// emailAddress attributes.
func parseDN(raw []byte) (dn, []string, error) {
	s := cryptobyte.String(raw)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, nil, errBadName
	}
	var out dn
	var emails []string
	for !seq.Empty() {
		var set cryptobyte.String
		if !seq.ReadASN1(&set, cbasn1.SET) {
			return nil, nil, errBadName
		}
		r, em, err := parseRDNSet(set)
		if err != nil {
			return nil, nil, err
		}
		emails = append(emails, em...)
		out = append(out, r)
	}
	return out, emails, nil
}

// parseRDNSet reads the contents of one RDN SET.
func parseRDNSet(set cryptobyte.String) (rdn, []string, error) {
	var r rdn
	var emails []string
	for !set.Empty() {
		var atv cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !set.ReadASN1(&atv, cbasn1.SEQUENCE) || !atv.ReadASN1ObjectIdentifier(&oid) {
			return nil, nil, errBadName
		}
		var val cryptobyte.String
		var tag cbasn1.Tag
		if !atv.ReadAnyASN1Element(&val, &tag) || !atv.Empty() {
			return nil, nil, errBadName
		}
		v, isStr := canonValue(val, tag)
		o := oid.String()
		if o == oidEmailAddress && isStr {
			emails = append(emails, v)
		}
		r = append(r, o+"="+v)
	}
	if len(r) == 0 {
		return nil, nil, errBadName
	}
	slices.Sort(r)
	return r, emails, nil
}

// canonValue gives a comparable form of an attribute value. String types are
// decoded, folded to lower case and their white space collapsed; any other
// type compares by its DER bytes.
func canonValue(el cryptobyte.String, tag cbasn1.Tag) (string, bool) {
	var body cryptobyte.String
	full := []byte(el)
	if !el.ReadASN1(&body, tag) {
		return "#" + hex.EncodeToString(full), false
	}
	var s string
	switch tag {
	case cbasn1.UTF8String, cbasn1.PrintableString, cbasn1.IA5String, cbasn1.T61String,
		cbasn1.Tag(18) /* NumericString */, cbasn1.Tag(28) /* UniversalString */ :
		if tag == 28 {
			if len(body)%4 != 0 {
				return "#" + hex.EncodeToString(full), false
			}
			var rs []rune
			for i := 0; i < len(body); i += 4 {
				rs = append(rs, rune(uint32(body[i])<<24|uint32(body[i+1])<<16|uint32(body[i+2])<<8|uint32(body[i+3])))
			}
			s = string(rs)
		} else {
			s = string(body)
		}
	case cbasn1.Tag(30): // BMPString
		if len(body)%2 != 0 {
			return "#" + hex.EncodeToString(full), false
		}
		u := make([]uint16, len(body)/2)
		for i := range u {
			u[i] = uint16(body[2*i])<<8 | uint16(body[2*i+1])
		}
		s = string(utf16.Decode(u))
	default:
		return "#" + hex.EncodeToString(full), false
	}
	return strings.Join(strings.Fields(strings.ToLower(s)), " "), true
}

// EqualNames reports whether two DER names are the same name as RFC 5280
// 7.1 compares them (string values decoded, case and insignificant white
// space folded, RDN order kept); a name that cannot be parsed equals only
// its own bytes. The signer package compares the issuer an ESS
// signing-certificate attribute names with it (docs/realworld.md).
func EqualNames(a, b []byte) bool { return nameKey(a) == nameKey(b) }

// nameKey returns the canonical key of a DER name, or the hex of the bytes
// when it cannot be parsed (such a name then only matches itself).
func nameKey(raw []byte) string {
	d, _, err := parseDN(raw)
	if err != nil {
		return "!" + hex.EncodeToString(raw)
	}
	return d.key()
}
