package cms

import (
	"encoding/asn1"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// OID is an object identifier in dotted form. The identifiers are string
// constants rather than asn1.ObjectIdentifier variables so no package has
// package-level slices anyone could modify.
type OID string

// The object identifiers more than one of signer, envelope and tsa use.
// Package-specific ones stay in their package.
const (
	// RFC 5652 id-data.
	OIDData OID = "1.2.840.113549.1.7.1"

	// RFC 2634 and RFC 5035 (ESS) signing-certificate attributes.
	OIDAttrSigningCertificate   OID = "1.2.840.113549.1.9.16.2.12"
	OIDAttrSigningCertificateV2 OID = "1.2.840.113549.1.9.16.2.47"

	// Digest algorithms (RFC 5754, RFC 3370).
	OIDMD5    OID = "1.2.840.113549.2.5"
	OIDSHA1   OID = "1.3.14.3.2.26"
	OIDSHA224 OID = "2.16.840.1.101.3.4.2.4"
	OIDSHA256 OID = "2.16.840.1.101.3.4.2.1"
	OIDSHA384 OID = "2.16.840.1.101.3.4.2.2"
	OIDSHA512 OID = "2.16.840.1.101.3.4.2.3"

	// RSA (RFC 8017, RFC 4055).
	OIDRSAEncryption OID = "1.2.840.113549.1.1.1"
	OIDMGF1          OID = "1.2.840.113549.1.1.8"
)

// ASN1 returns the identifier as an asn1.ObjectIdentifier. Constants are
// well-formed, which a test checks; a caller's dotted string is checked
// before it is converted. The result is shared: callers only read it.
func (o OID) ASN1() asn1.ObjectIdentifier {
	if id, ok := oidCache.Load(o); ok {
		return id.(asn1.ObjectIdentifier)
	}
	id := o.parse()
	if oidCached.Add(1) <= maxCachedOIDs {
		oidCache.Store(o, id)
	}
	return id
}

// oidCache keeps parsed identifiers: a signature encodes seven of them,
// and parsing each every time was 20 of the 120 allocations pecet makes
// per signature (BenchmarkSignDigestP256 in signer). Bounded, because a
// caller's content type is an OID too.
var (
	oidCache  sync.Map // OID → asn1.ObjectIdentifier
	oidCached atomic.Int32
)

const maxCachedOIDs = 256

func (o OID) parse() asn1.ObjectIdentifier {
	parts := strings.Split(string(o), ".")
	id := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			panic("cms: bad OID constant " + string(o))
		}
		id[i] = n
	}
	return id
}

// Is reports whether id equals o without allocating.
func Is(id asn1.ObjectIdentifier, o OID) bool {
	s := string(o)
	for i, n := range id {
		if i > 0 {
			if s == "" || s[0] != '.' {
				return false
			}
			s = s[1:]
		}
		v, digits := 0, 0
		for digits < len(s) && s[digits] != '.' {
			v = v*10 + int(s[digits]-'0')
			digits++
		}
		if digits == 0 || v != n {
			return false
		}
		s = s[digits:]
	}
	return s == ""
}
