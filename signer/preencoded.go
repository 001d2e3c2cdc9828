package signer

import (
	"crypto"
	"crypto/x509"
	"sync"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Pre-encoded DER. Every signature repeats the same object identifiers and,
// for one key version, the same certificate parts (the ESS
// signing-certificate-v2 attribute hashes the whole certificate); encoding
// them afresh was two fifths of signer's CPU per P-256 signature in a
// profile of the service (docs/performance.md "Where a call's time goes (CPU profile,
// sign-digest at c16)"). Both caches are keyed by what the bytes
// are computed from (the dotted OID; the hash and the certificate's DER),
// so a cached value is always the one a fresh encoding would give, and
// both are bounded: a caller's content type is an OID too, and a
// long-running service sees new certificates as keys rotate.

const (
	maxCachedOIDDER = 256
	maxCachedLeaves = 256
)

var (
	oidDERMu sync.RWMutex
	oidDER   = map[oidName][]byte{}
)

// derOIDOf returns the DER (tag, length, value) of o, and false when DER
// cannot encode it (the dotted-form check lets through a second arc of 40
// or more under 0 or 1). The result is shared: callers only read it.
func derOIDOf(o oidName) ([]byte, bool) {
	oidDERMu.RLock()
	der, ok := oidDER[o]
	oidDERMu.RUnlock()
	if ok {
		return der, true
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1ObjectIdentifier(o.ASN1())
	der, err := b.Bytes()
	if err != nil {
		return nil, false
	}
	oidDERMu.Lock()
	if len(oidDER) < maxCachedOIDDER {
		oidDER[o] = der
	}
	oidDERMu.Unlock()
	return der, true
}

// addOID appends the DER of o; one DER cannot encode leaves the builder's
// error, as cryptobyte's own AddASN1ObjectIdentifier does.
func addOID(b *cryptobyte.Builder, o oidName) {
	if der, ok := derOIDOf(o); ok {
		b.AddBytes(der)
		return
	}
	b.AddASN1ObjectIdentifier(o.ASN1())
}

// leafParts are the parts of a SignerInfo that depend only on the signing
// certificate and the hash.
type leafParts struct {
	// essAttr is the whole signing-certificate-v2 Attribute.
	essAttr []byte
	// issuerSerial is the IssuerAndSerialNumber SEQUENCE.
	issuerSerial []byte
}

type leafKey struct {
	h   crypto.Hash
	raw string
}

var (
	leavesMu sync.RWMutex
	leaves   = map[leafKey]*leafParts{}
)

// partsOf returns leaf's pre-encoded parts for signatures with hash h. The
// key is the certificate's DER: a map lookup hashes it far faster than the
// SHA-256 the attribute needs, and equal DER gives equal parts.
func partsOf(h crypto.Hash, leaf *x509.Certificate) (*leafParts, error) {
	leavesMu.RLock()
	p, ok := leaves[leafKey{h, string(leaf.Raw)}]
	leavesMu.RUnlock()
	if ok {
		return p, nil
	}
	ess := cryptobyte.NewBuilder(nil)
	ess.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addOID(b, oidAttrSigningCertificateV2)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, h, leaf) })
	})
	isn := cryptobyte.NewBuilder(nil)
	isn.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(leaf.RawIssuer)
		b.AddASN1BigInt(leaf.SerialNumber)
	})
	p = &leafParts{}
	var err error
	if p.essAttr, err = ess.Bytes(); err != nil {
		return nil, err
	}
	if p.issuerSerial, err = isn.Bytes(); err != nil {
		return nil, err
	}
	leavesMu.Lock()
	if len(leaves) >= maxCachedLeaves {
		// Old key versions' entries go all at once; the live ones come
		// back on their next signature.
		clear(leaves)
	}
	leaves[leafKey{h, string(leaf.Raw)}] = p
	leavesMu.Unlock()
	return p, nil
}
