package cms

import (
	"errors"
	"fmt"
)

// Errors of NormaliseBER; every error it returns is a *BERError wrapping
// one of them.
var (
	ErrMalformedBER = errors.New("cms: malformed BER")
	ErrBERTooLarge  = errors.New("cms: BER exceeds the limits")
)

// BERError is a NormaliseBER finding: Kind is ErrMalformedBER or
// ErrBERTooLarge, Msg says where and what, so a caller can report it under
// its own sentinel (signer.ErrMalformed, envelope's).
type BERError struct {
	Kind error
	Msg  string
}

func (e *BERError) Error() string { return e.Kind.Error() + ": " + e.Msg }

func (e *BERError) Unwrap() error { return e.Kind }

func malformedf(format string, args ...any) error {
	return &BERError{Kind: ErrMalformedBER, Msg: fmt.Sprintf(format, args...)}
}

func tooLargef(format string, args ...any) error {
	return &BERError{Kind: ErrBERTooLarge, Msg: fmt.Sprintf(format, args...)}
}

// BER to DER length normalisation.
//
// OpenSSL writes CMS in BER when it streams (cms -sign -stream, and
// S/MIME output): indefinite lengths, and the eContent as a constructed
// OCTET STRING of chunks. The strict DER parsers of signer and envelope read
// neither, so they first rewrite such input with definite, minimal lengths and
// flattened strings.
//
// The rewrite is bounded, because this is the code that sees hostile bytes
// first:
//   - every length is checked against the bytes that remain before anything
//     is allocated, so a short input cannot claim a large element;
//   - nesting is limited (maxDepth: signer.Limits.MaxDepth, envelope.Limits.MaxDepth), which also bounds recursion;
//   - the output is built in one buffer whose size is within a small
//     constant of the input's (a definite header is at most 6 bytes, an
//     indefinite element costs at least 4), and nothing else is allocated
//     per element;
//   - input that is already DER-shaped is returned as it is, without a copy.
//
// It does not sort SET OF or otherwise canonicalise values: signatures on
// certificates and signed attributes are over the signer's own bytes.

// header is a decoded identifier and length.
type header struct {
	tag        byte // the single identifier octet
	hdrLen     int
	length     int  // content length; -1 for indefinite
	nonMinimal bool // a definite length not in its shortest form
}

func (h header) constructed() bool { return h.tag&0x20 != 0 }

// readHeader decodes the header at in[0:], checking the length against what
// remains of in.
func readHeader(in []byte, off int) (header, error) {
	if len(in) < 2 {
		return header{}, malformedf("truncated element at offset %d", off)
	}
	h := header{tag: in[0], hdrLen: 2}
	if h.tag&0x1f == 0x1f {
		return header{}, malformedf("high tag number at offset %d (not used in CMS)", off)
	}
	b := in[1]
	switch {
	case b < 0x80:
		h.length = int(b)
	case b == 0x80:
		if !h.constructed() {
			return header{}, malformedf("indefinite length on a primitive element at offset %d", off)
		}
		h.length = -1
		return h, nil
	default:
		n := int(b & 0x7f)
		// Four length octets reach 4 GiB, far beyond Limits.MaxBytes.
		if n > 4 {
			return header{}, malformedf("length of %d octets at offset %d", n, off)
		}
		if len(in) < 2+n {
			return header{}, malformedf("truncated length at offset %d", off)
		}
		v := 0
		for _, c := range in[2 : 2+n] {
			v = v<<8 | int(c)
		}
		h.hdrLen = 2 + n
		h.length = v
		h.nonMinimal = v < 0x80 || in[2] == 0
	}
	if h.length > len(in)-h.hdrLen {
		return header{}, malformedf("element at offset %d claims %d bytes, only %d remain", off, h.length, len(in)-h.hdrLen)
	}
	return h, nil
}

// isEOC reports an end-of-contents marker.
func isEOC(in []byte) bool { return len(in) >= 2 && in[0] == 0 && in[1] == 0 }

// flattenable reports universal string types whose constructed (BER)
// encoding is rewritten as primitive. BIT STRING is left alone: its chunks
// each carry an unused-bits octet and CMS never streams one.
func flattenable(tag byte) bool {
	if tag&0xe0 != 0x20 { // universal and constructed
		return false
	}
	switch tag & 0x1f {
	case 4, 12, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30:
		return true
	}
	return false
}

// DefaultMaxDepth is the nesting NormaliseBER allows when given none, the
// default of signer.Limits.MaxDepth (CMS with certificates needs about 12).
const DefaultMaxDepth = 32

type normaliser struct {
	maxDepth int
	emit     bool   // false: only check and report whether a rewrite is needed
	out      []byte // the rewrite, when emit
}

// NormaliseBER returns in with definite minimal lengths and flattened
// constructed strings; in itself when it already has them.
//
// It is the one bounded BER normaliser of pecet: signer.Parse and
// envelope.Parse both use it. A maxDepth of 0 or less takes
// DefaultMaxDepth. Trailing bytes after the element are an error.
func NormaliseBER(in []byte, maxDepth int) ([]byte, error) {
	if len(in) == 0 {
		return nil, malformedf("empty input")
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	out, _, err := NormaliseBERPadded(in, maxDepth, 0)
	return out, err
}

// NormaliseBERPadded is NormaliseBER that ignores up to maxZeros zero bytes after
// the element (the fixed-size buffer of a smart-card signer) and says how
// many there were. Any other trailing byte is malformed.
func NormaliseBERPadded(in []byte, maxDepth, maxZeros int) ([]byte, int, error) {
	n := normaliser{maxDepth: maxDepth}
	used, changed, err := n.element(in, 0, 1)
	if err != nil {
		return nil, 0, err
	}
	padding := len(in) - used
	if padding > 0 {
		if maxZeros <= 0 || !allZero(in[used:]) {
			return nil, 0, malformedf("%d bytes of trailing data after the ContentInfo", padding)
		}
		if padding > maxZeros {
			return nil, 0, malformedf("%d zero bytes of padding after the ContentInfo, more than the %d allowed", padding, maxZeros)
		}
		in = in[:used]
	}
	if !changed {
		return in, padding, nil
	}
	n = normaliser{maxDepth: maxDepth, emit: true, out: make([]byte, 0, len(in)+len(in)/2+16)}
	if _, _, err := n.element(in, 0, 1); err != nil {
		return nil, 0, err
	}
	return n.out, padding, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// element processes the element at in[0:] (at offset off of the whole
// input) and returns the bytes it used and whether its encoding changes.
func (n *normaliser) element(in []byte, off, depth int) (int, bool, error) {
	if depth > n.maxDepth {
		return 0, false, tooLargef("nesting deeper than %d levels at offset %d", n.maxDepth, off)
	}
	h, err := readHeader(in, off)
	if err != nil {
		return 0, false, err
	}
	if h.tag == 0 {
		return 0, false, malformedf("unexpected end-of-contents at offset %d", off)
	}
	if !h.constructed() {
		used := h.hdrLen + h.length
		if n.emit {
			n.out = append(n.out, h.tag)
			n.out = appendLength(n.out, h.length)
			n.out = append(n.out, in[h.hdrLen:used]...)
		}
		return used, h.nonMinimal, nil
	}

	flatten := flattenable(h.tag)
	tag := h.tag
	if flatten {
		tag &^= 0x20
	}
	var start int
	if n.emit {
		n.out = append(n.out, tag)
		start = len(n.out)
	}
	changed := h.nonMinimal || h.length < 0 || flatten

	used, err := children(in, h, off, func(child []byte, childOff int) (int, error) {
		if flatten {
			return n.chunk(child, childOff, depth+1)
		}
		used, ch, err := n.element(child, childOff, depth+1)
		changed = changed || ch
		return used, err
	})
	if err != nil {
		return 0, false, err
	}
	if n.emit {
		n.insertLength(start)
	}
	return used, changed, nil
}

// children walks the contents of a constructed element whose header is h:
// up to its definite length, or up to its end-of-contents octets. each
// handles one child and says how many bytes it used. It returns the bytes
// the whole element used, header and end-of-contents included. Both the
// element and the string-segment walks go through here, so the one place
// that checks lengths against the input is this one.
func children(in []byte, h header, off int, each func(child []byte, childOff int) (int, error)) (int, error) {
	body := in[h.hdrLen:]
	if h.length >= 0 {
		body = body[:h.length]
	}
	pos := 0
	for {
		if h.length >= 0 && pos == len(body) {
			return h.hdrLen + pos, nil
		}
		if h.length < 0 && isEOC(body[pos:]) {
			return h.hdrLen + pos + 2, nil
		}
		if pos == len(body) {
			return 0, malformedf("missing end-of-contents for the element at offset %d", off)
		}
		used, err := each(body[pos:], off+h.hdrLen+pos)
		if err != nil {
			return 0, err
		}
		pos += used
	}
}

// chunk appends the content of one segment of a constructed string; the
// segments are OCTET STRINGs, themselves possibly constructed (X.690 8.23).
func (n *normaliser) chunk(in []byte, off, depth int) (int, error) {
	if depth > n.maxDepth {
		return 0, tooLargef("nesting deeper than %d levels at offset %d", n.maxDepth, off)
	}
	h, err := readHeader(in, off)
	if err != nil {
		return 0, err
	}
	switch h.tag {
	case 0x04:
		used := h.hdrLen + h.length
		if n.emit {
			n.out = append(n.out, in[h.hdrLen:used]...)
		}
		return used, nil
	case 0x24:
	default:
		return 0, malformedf("segment of a constructed string at offset %d is not an OCTET STRING", off)
	}
	return children(in, h, off, func(child []byte, childOff int) (int, error) {
		return n.chunk(child, childOff, depth+1)
	})
}

// insertLength puts the definite length of out[start:] in front of it. The
// move is at most the element's size once per nesting level, and nesting is
// bounded.
func (n *normaliser) insertLength(start int) {
	size := len(n.out) - start
	var buf [6]byte
	hdr := appendLength(buf[:0], size)
	n.out = append(n.out, hdr...)
	copy(n.out[start+len(hdr):], n.out[start:start+size])
	copy(n.out[start:], hdr)
}

// appendLength appends a DER length.
func appendLength(b []byte, l int) []byte {
	switch {
	case l < 0x80:
		return append(b, byte(l))
	case l <= 0xff:
		return append(b, 0x81, byte(l))
	case l <= 0xffff:
		return append(b, 0x82, byte(l>>8), byte(l))
	case l <= 0xffffff:
		return append(b, 0x83, byte(l>>16), byte(l>>8), byte(l))
	}
	return append(b, 0x84, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
}
