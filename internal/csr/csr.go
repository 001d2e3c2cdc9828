// Package csr builds PKCS#10 certification requests (RFC 2986) for keys on
// the token: it parses an RFC 4514 distinguished-name string and subject
// alternative names strictly, and signs the request with a crypto.Signer
// (the key version's own, on the token: proof of possession).
//
// The DN parser accepts a deliberate subset of RFC 4514: one attribute per
// RDN (no '+' multi-valued RDNs, which CAs reject for end entities anyway),
// a fixed list of attribute type names or dotted OIDs, string values with
// RFC 4514 escapes (\, \+ \" \\ \< \> \; \= \# and \XX hex pairs forming
// UTF-8), no #hex BER values. Whatever it cannot say exactly it refuses, so
// an officer never sends a CA a subject other than the one they typed.
package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrSubject and ErrSAN: the string cannot be parsed; the message says where.
var (
	ErrSubject = errors.New("csr: invalid subject")
	ErrSAN     = errors.New("csr: invalid subject alternative name")
)

// Limits: a DN string and its parts are short in practice; bounding them
// bounds the parser's work on hostile input.
const (
	MaxSubjectLen = 1024
	MaxRDNs       = 16
	MaxSANs       = 32
	MaxValueLen   = 256
)

// attribute types by RFC 4514 short name (case-insensitive), plus the ones
// Czech qualified certificates use (X.520 organizationIdentifier).
var attrTypes = map[string]asn1.ObjectIdentifier{
	"CN":                     {2, 5, 4, 3},
	"SN":                     {2, 5, 4, 4},
	"SERIALNUMBER":           {2, 5, 4, 5},
	"C":                      {2, 5, 4, 6},
	"L":                      {2, 5, 4, 7},
	"ST":                     {2, 5, 4, 8},
	"STREET":                 {2, 5, 4, 9},
	"O":                      {2, 5, 4, 10},
	"OU":                     {2, 5, 4, 11},
	"T":                      {2, 5, 4, 12},
	"TITLE":                  {2, 5, 4, 12},
	"GN":                     {2, 5, 4, 42},
	"GIVENNAME":              {2, 5, 4, 42},
	"ORGANIZATIONIDENTIFIER": {2, 5, 4, 97},
	"DC":                     {0, 9, 2342, 19200300, 100, 1, 25},
	"E":                      {1, 2, 840, 113549, 1, 9, 1},
	"EMAILADDRESS":           {1, 2, 840, 113549, 1, 9, 1},
}

var oidCountry = asn1.ObjectIdentifier{2, 5, 4, 6}

// ParseSubject parses "CN=…,O=…,C=CZ" into the RDN sequence it denotes
// (RFC 4514 lists RDNs most significant last, so the sequence is the
// string's reverse).
func ParseSubject(s string) (pkix.RDNSequence, error) {
	if len(s) > MaxSubjectLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrSubject, MaxSubjectLen)
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrSubject)
	}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrSubject)
	}
	var rdns []pkix.RelativeDistinguishedNameSET
	p := &parser{s: s}
	for {
		if len(rdns) == MaxRDNs {
			return nil, fmt.Errorf("%w: more than %d attributes", ErrSubject, MaxRDNs)
		}
		atv, err := p.attribute()
		if err != nil {
			return nil, err
		}
		rdns = append(rdns, pkix.RelativeDistinguishedNameSET{atv})
		if p.eof() {
			break
		}
		switch c := p.s[p.i]; c {
		case ',', ';':
			p.i++
		case '+':
			return nil, fmt.Errorf("%w: multi-valued RDN at byte %d ('+'): give one attribute per RDN", ErrSubject, p.i)
		default:
			return nil, fmt.Errorf("%w: unexpected %q at byte %d", ErrSubject, c, p.i)
		}
	}
	out := make(pkix.RDNSequence, 0, len(rdns))
	for i := len(rdns) - 1; i >= 0; i-- {
		out = append(out, rdns[i])
	}
	return out, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) skipSpace() {
	for !p.eof() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *parser) attribute() (pkix.AttributeTypeAndValue, error) {
	p.skipSpace()
	start := p.i
	for !p.eof() && p.s[p.i] != '=' && p.s[p.i] != ',' && p.s[p.i] != '+' {
		p.i++
	}
	if p.eof() || p.s[p.i] != '=' {
		return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: attribute at byte %d has no '='", ErrSubject, start)
	}
	name := strings.TrimSpace(p.s[start:p.i])
	p.i++ // '='
	oid, err := attrType(name)
	if err != nil {
		return pkix.AttributeTypeAndValue{}, err
	}
	val, err := p.value()
	if err != nil {
		return pkix.AttributeTypeAndValue{}, err
	}
	if val == "" {
		return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: %s has an empty value", ErrSubject, name)
	}
	if utf8.RuneCountInString(val) > MaxValueLen {
		return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: %s is longer than %d characters", ErrSubject, name, MaxValueLen)
	}
	if oid.Equal(oidCountry) {
		// X.520: a two-letter ISO 3166 code, PrintableString.
		if len(val) != 2 || val[0] < 'A' || val[0] > 'Z' || val[1] < 'A' || val[1] > 'Z' {
			return pkix.AttributeTypeAndValue{}, fmt.Errorf("%w: C must be a two-letter upper-case country code, got %q", ErrSubject, val)
		}
	}
	return pkix.AttributeTypeAndValue{Type: oid, Value: val}, nil
}

func attrType(name string) (asn1.ObjectIdentifier, error) {
	if oid, ok := attrTypes[strings.ToUpper(name)]; ok {
		return oid, nil
	}
	// A dotted OID: numbers separated by dots, at least two arcs.
	parts := strings.Split(name, ".")
	if len(parts) >= 2 && len(parts) <= 20 {
		oid := make(asn1.ObjectIdentifier, 0, len(parts))
		for _, part := range parts {
			n, err := strconv.Atoi(part)
			if err != nil || n < 0 || (len(part) > 1 && part[0] == '0') || len(part) > 9 {
				oid = nil
				break
			}
			oid = append(oid, n)
		}
		if oid != nil && oid[0] <= 2 && (oid[0] == 2 || oid[1] < 40) {
			return oid, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown attribute type %q (CN, O, OU, C, L, ST, STREET, SERIALNUMBER, GN, SN, T, DC, E, organizationIdentifier or a dotted OID)", ErrSubject, name)
}

// value reads an RFC 4514 string value up to an unescaped ',', ';' or '+'.
// Unescaped leading and trailing spaces are not part of the value.
func (p *parser) value() (string, error) {
	p.skipSpace()
	if !p.eof() && p.s[p.i] == '#' {
		return "", fmt.Errorf("%w: #hex values at byte %d are not supported: write the value as a string", ErrSubject, p.i)
	}
	var b []byte
	trail := 0 // unescaped trailing spaces written to b
loop:
	for !p.eof() {
		c := p.s[p.i]
		switch c {
		case ',', ';', '+':
			break loop
		case '"', '<', '>', 0:
			return "", fmt.Errorf("%w: %q at byte %d must be escaped with '\\'", ErrSubject, c, p.i)
		case '\\':
			p.i++
			if p.eof() {
				return "", fmt.Errorf("%w: '\\' at the end", ErrSubject)
			}
			e := p.s[p.i]
			if strings.IndexByte(` "#+,;<=>\`, e) >= 0 {
				b = append(b, e)
				p.i++
			} else if h, ok := hexPair(p.s[p.i:]); ok {
				b = append(b, h)
				p.i += 2
			} else {
				return "", fmt.Errorf("%w: bad escape at byte %d", ErrSubject, p.i-1)
			}
			trail = 0
			continue
		case ' ':
			trail++
		default:
			trail = 0
		}
		b = append(b, c)
		p.i++
	}
	// One exit, so the UTF-8 check covers a value ended by a separator as
	// well as one ended by the end of the string.
	v := string(b[:len(b)-trail])
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("%w: hex escapes do not form UTF-8", ErrSubject)
	}
	return v, nil
}

func hexPair(s string) (byte, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:2], 16, 8)
	return byte(n), err == nil
}

// SANs are the parsed subject alternative names.
type SANs struct {
	DNS   []string
	Email []string
	IP    []net.IP
	URI   []*url.URL
}

// ParseSANs parses "DNS:name", "email:addr", "IP:addr", "URI:uri".
func ParseSANs(in []string) (SANs, error) {
	var out SANs
	if len(in) > MaxSANs {
		return out, fmt.Errorf("%w: more than %d", ErrSAN, MaxSANs)
	}
	for _, s := range in {
		kind, v, ok := strings.Cut(s, ":")
		if !ok || v == "" || len(v) > MaxValueLen {
			return out, fmt.Errorf("%w: %q: use DNS:name, email:address, IP:address or URI:uri", ErrSAN, trunc(s))
		}
		switch strings.ToUpper(kind) {
		case "DNS":
			if !validDNS(v) {
				return out, fmt.Errorf("%w: %q is not a DNS name", ErrSAN, trunc(v))
			}
			out.DNS = append(out.DNS, v)
		case "EMAIL":
			a, err := mail.ParseAddress(v)
			if err != nil || a.Address != v || a.Name != "" {
				return out, fmt.Errorf("%w: %q is not an email address", ErrSAN, trunc(v))
			}
			out.Email = append(out.Email, v)
		case "IP":
			ip := net.ParseIP(v)
			if ip == nil {
				return out, fmt.Errorf("%w: %q is not an IP address", ErrSAN, trunc(v))
			}
			out.IP = append(out.IP, ip)
		case "URI":
			u, err := url.Parse(v)
			if err != nil || u.Scheme == "" || !u.IsAbs() {
				return out, fmt.Errorf("%w: %q is not an absolute URI", ErrSAN, trunc(v))
			}
			out.URI = append(out.URI, u)
		default:
			return out, fmt.Errorf("%w: unknown kind %q (DNS, email, IP, URI)", ErrSAN, trunc(kind))
		}
	}
	return out, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func validDNS(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimPrefix(s, "*."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Create makes a DER PKCS#10 request for signer's public key, signed by
// signer: SHA-256 with RSA (PKCS#1 v1.5) or ECDSA P-256, SHA-384 with
// ECDSA P-384.
func Create(signer crypto.Signer, subject string, sans []string) ([]byte, error) {
	rdns, err := ParseSubject(subject)
	if err != nil {
		return nil, err
	}
	alt, err := ParseSANs(sans)
	if err != nil {
		return nil, err
	}
	raw, err := asn1.Marshal(rdns)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSubject, err)
	}
	tmpl := &x509.CertificateRequest{
		RawSubject:     raw,
		DNSNames:       alt.DNS,
		EmailAddresses: alt.Email,
		IPAddresses:    alt.IP,
		URIs:           alt.URI,
	}
	switch k := signer.Public().(type) {
	case *rsa.PublicKey:
		tmpl.SignatureAlgorithm = x509.SHA256WithRSA
	case *ecdsa.PublicKey:
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
		if k.Curve == elliptic.P384() {
			tmpl.SignatureAlgorithm = x509.ECDSAWithSHA384
		}
	default:
		return nil, fmt.Errorf("csr: unsupported key type %T", k)
	}
	return x509.CreateCertificateRequest(rand.Reader, tmpl, signer)
}
