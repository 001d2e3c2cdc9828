package tsa

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// OIDContentTypeTSTInfo is id-ct-TSTInfo, the eContentType of a token.
const OIDContentTypeTSTInfo = "1.2.840.113549.1.9.16.1.4"

// maxSerialBytes: RFC 3161 2.4.2 lets serials reach 160 bits; a parser
// accepts a little more (a sign octet) and nothing larger.
const maxSerialBytes = 21

// TSTInfo is the content of a time-stamp token (RFC 3161 2.4.2).
type TSTInfo struct {
	Policy  asn1.ObjectIdentifier
	Hash    crypto.Hash // 0 when HashOID is unknown
	HashOID asn1.ObjectIdentifier
	Digest  []byte
	Serial  *big.Int
	GenTime time.Time
	// Accuracy is zero when absent.
	Accuracy time.Duration
	Ordering bool
	Nonce    *big.Int
	// TSAName is the DER of the tsa GeneralName; nil when absent.
	TSAName []byte
}

// marshal encodes the TSTInfo as DER; genTime to the millisecond.
func (t *TSTInfo) marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(t.Policy)
		addImprint(b, t.HashOID, t.Digest)
		b.AddASN1BigInt(t.Serial)
		b.AddASN1(cbasn1.GeneralizedTime, func(b *cryptobyte.Builder) { b.AddBytes([]byte(formatGenTime(t.GenTime))) })
		if t.Accuracy > 0 {
			addAccuracy(b, t.Accuracy)
		}
		if t.Ordering {
			b.AddASN1Boolean(true)
		}
		if t.Nonce != nil {
			b.AddASN1BigInt(t.Nonce)
		}
		if t.TSAName != nil {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(t.TSAName) })
		}
	})
	return b.Bytes()
}

// formatGenTime writes a DER GeneralizedTime in UTC with the fraction of
// a second to the millisecond and no trailing zeros (X.690 11.7).
func formatGenTime(t time.Time) string {
	t = t.UTC().Truncate(time.Millisecond)
	s := t.Format("20060102150405")
	if ms := t.Nanosecond() / int(time.Millisecond); ms != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", ms), "0")
	}
	return s + "Z"
}

// parseGenTime reads a DER GeneralizedTime: UTC ("Z"), seconds present, a
// fraction without trailing zeros.
func parseGenTime(s string) (time.Time, bool) {
	if len(s) < 15 || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	main, frac := s[:14], s[14:len(s)-1]
	t, err := time.Parse("20060102150405", main)
	if err != nil {
		return time.Time{}, false
	}
	if frac != "" {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 || frac[len(frac)-1] == '0' {
			return time.Time{}, false
		}
		ns := 0
		for i, c := range frac[1:] {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			ns += int(c-'0') * pow10(8-i)
		}
		t = t.Add(time.Duration(ns))
	}
	return t, true
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// addAccuracy writes Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL,
// millis [0] INTEGER (1..999) OPTIONAL, micros [1] INTEGER (1..999) OPTIONAL }.
func addAccuracy(b *cryptobyte.Builder, d time.Duration) {
	sec := int64(d / time.Second)
	ms := int64(d % time.Second / time.Millisecond)
	us := int64(d % time.Millisecond / time.Microsecond)
	if sec == 0 && ms == 0 && us == 0 {
		us = 1 // below a microsecond: say one rather than nothing
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if sec > 0 {
			b.AddASN1Int64(sec)
		}
		if ms > 0 {
			b.AddASN1Int64WithTag(ms, cbasn1.Tag(0).ContextSpecific())
		}
		if us > 0 {
			b.AddASN1Int64WithTag(us, cbasn1.Tag(1).ContextSpecific())
		}
	})
}

// ParseTSTInfo parses a DER TSTInfo strictly.
func ParseTSTInfo(der []byte) (*TSTInfo, error) {
	bad := func(what string) error { return fmt.Errorf("%w: TSTInfo: %s", ErrMalformed, what) }
	s := cryptobyte.String(der)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, bad("not one DER SEQUENCE")
	}
	var version int64
	if !body.ReadASN1Integer(&version) || version != 1 {
		return nil, bad("version is not 1")
	}
	t := &TSTInfo{}
	if !body.ReadASN1ObjectIdentifier(&t.Policy) {
		return nil, bad("policy")
	}
	var mi cryptobyte.String
	if !body.ReadASN1(&mi, cbasn1.SEQUENCE) {
		return nil, bad("messageImprint")
	}
	var err error
	if t.HashOID, t.Digest, err = readImprint(mi); err != nil {
		return nil, bad("messageImprint")
	}
	t.Hash = hashFromOID(t.HashOID)
	var serial cryptobyte.String
	if !body.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) > maxSerialBytes {
		return nil, bad("serialNumber")
	}
	t.Serial = new(big.Int)
	if ss := cryptobyte.String(append([]byte{2, byte(len(serial))}, serial...)); !ss.ReadASN1Integer(t.Serial) {
		return nil, bad("serialNumber")
	}
	var gt cryptobyte.String
	var ok bool
	if !body.ReadASN1(&gt, cbasn1.GeneralizedTime) {
		return nil, bad("genTime")
	}
	if t.GenTime, ok = parseGenTime(string(gt)); !ok {
		return nil, bad("genTime is not a DER GeneralizedTime")
	}
	if body.PeekASN1Tag(cbasn1.SEQUENCE) {
		var acc cryptobyte.String
		body.ReadASN1(&acc, cbasn1.SEQUENCE)
		if t.Accuracy, ok = readAccuracy(acc); !ok {
			return nil, bad("accuracy")
		}
	}
	if body.PeekASN1Tag(cbasn1.BOOLEAN) {
		if !body.ReadASN1Boolean(&t.Ordering) || !t.Ordering {
			return nil, bad("ordering (DER leaves out a FALSE default)")
		}
	}
	if body.PeekASN1Tag(cbasn1.INTEGER) {
		var n cryptobyte.String
		if !body.ReadASN1(&n, cbasn1.INTEGER) || len(n) > maxNonceBytes {
			return nil, bad("nonce")
		}
		t.Nonce = new(big.Int)
		if nn := cryptobyte.String(append([]byte{2, byte(len(n))}, n...)); !nn.ReadASN1Integer(t.Nonce) {
			return nil, bad("nonce")
		}
	}
	if body.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var name cryptobyte.String
		if !body.ReadASN1(&name, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return nil, bad("tsa")
		}
		t.TSAName = bytes.Clone(name)
	}
	if body.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		var ext cryptobyte.String
		body.ReadASN1(&ext, cbasn1.Tag(1).Constructed().ContextSpecific())
	}
	if !body.Empty() {
		return nil, bad("unexpected field")
	}
	return t, nil
}

func readAccuracy(s cryptobyte.String) (time.Duration, bool) {
	var sec, ms, us int64
	if s.PeekASN1Tag(cbasn1.INTEGER) && (!s.ReadASN1Integer(&sec) || sec < 0 || sec > 1<<31) {
		return 0, false
	}
	// millis and micros are IMPLICIT [0] and [1], 1..999 when present.
	if s.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()) && (!s.ReadASN1Int64WithTag(&ms, cbasn1.Tag(0).ContextSpecific()) || ms < 1 || ms > 999) {
		return 0, false
	}
	if s.PeekASN1Tag(cbasn1.Tag(1).ContextSpecific()) && (!s.ReadASN1Int64WithTag(&us, cbasn1.Tag(1).ContextSpecific()) || us < 1 || us > 999) {
		return 0, false
	}
	if !s.Empty() {
		return 0, false
	}
	return time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond + time.Duration(us)*time.Microsecond, true
}
