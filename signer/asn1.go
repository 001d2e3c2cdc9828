package signer

import (
	"bytes"
	"encoding/asn1"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Small DER helpers shared by sign.go and verify.go.

// addAlgorithm appends an AlgorithmIdentifier; params is the DER of the
// parameters, nil for absent.
func addAlgorithm(b *cryptobyte.Builder, o oidName, params []byte) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		addOID(b, o)
		if params != nil {
			b.AddBytes(params)
		}
	})
}

// derNull is the DER of NULL, the parameters rsaEncryption requires.
func derNull() []byte { return []byte{0x05, 0x00} }

// encodeAttribute returns the DER of an Attribute. Each value must be one
// DER element; the values are sorted as a DER SET OF requires.
func encodeAttribute(a Attribute) ([]byte, error) {
	for _, v := range a.Values {
		s := cryptobyte.String(v)
		var el cryptobyte.String
		if !s.ReadAnyASN1Element(&el, nil) || !s.Empty() {
			return nil, malformedf("attribute %s: a value is not one DER element", shortOID(a.Type))
		}
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(a.Type)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddBytes(setOf(a.Values))
		})
	})
	return b.Bytes()
}

// setOf concatenates DER elements in the order DER requires for SET OF
// (X.690 11.6): ascending as octet strings. bytes.Compare agrees with the
// X.690 rule of padding the shorter with zero octets except where the
// padded encodings are equal, and then either order is DER.
func setOf(elems [][]byte) []byte {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	return bytes.Join(sorted, nil)
}

// addTime appends a Time as RFC 5652 11.3 asks: UTCTime for 1950 through
// 2049, GeneralizedTime otherwise, always in UTC and to the second.
func addTime(b *cryptobyte.Builder, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
		return
	}
	b.AddASN1GeneralizedTime(t)
}

// readTime reads a UTCTime or a GeneralizedTime.
func readTime(s *cryptobyte.String) (time.Time, bool) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		return t, s.ReadASN1UTCTime(&t)
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		return t, s.ReadASN1GeneralizedTime(&t)
	}
	return t, false
}

// oneElement reports whether b is exactly one element with the given tag and
// returns its contents.
func oneElement(b []byte, tag cbasn1.Tag) (cryptobyte.String, bool) {
	s := cryptobyte.String(b)
	var out cryptobyte.String
	return out, s.ReadASN1(&out, tag) && s.Empty()
}

// readOID reads an OBJECT IDENTIFIER.
func readOID(s *cryptobyte.String) (asn1.ObjectIdentifier, bool) {
	var id asn1.ObjectIdentifier
	return id, s.ReadASN1ObjectIdentifier(&id)
}
