package envelope

import (
	"bufio"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/asn1"
	"errors"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// berStream reads BER from a stream one header at a time, keeping the
// stack of open constructed elements so that definite lengths are checked
// against their parents and indefinite ones end with end-of-contents.
// Every byte read is counted against max; nesting is bounded by depth.
type berStream struct {
	r     *bufio.Reader
	off   int64
	max   int64
	depth int
	stack []frame
}

type frame struct {
	indefinite bool
	end        int64 // absolute offset where a definite element ends
}

type berHeader struct {
	tag        byte // class, constructed bit and number (< 31)
	indefinite bool
	length     int64
	raw        [10]byte
	rawLen     int
}

func (h berHeader) constructed() bool { return h.tag&0x20 != 0 }

func (b *berStream) readByte() (byte, error) {
	if b.off >= b.max {
		return 0, tooLargef("stream exceeds the limit of %d bytes", b.max)
	}
	c, err := b.r.ReadByte()
	if err != nil {
		return 0, eofMalformed(err)
	}
	b.off++
	return c, nil
}

// eofMalformed turns an early end of input into ErrMalformed; other read
// errors (the caller's stream failed or was cancelled) pass through.
func eofMalformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return malformedf("input ends inside the message")
	}
	return err
}

// read fills p entirely.
func (b *berStream) read(p []byte) error {
	if int64(len(p)) > b.max-b.off {
		return tooLargef("stream exceeds the limit of %d bytes", b.max)
	}
	n, err := io.ReadFull(b.r, p)
	b.off += int64(n)
	if err != nil {
		return eofMalformed(err)
	}
	return nil
}

// header reads a tag and length. End-of-contents is tag 0, length 0.
func (b *berStream) header() (berHeader, error) {
	var h berHeader
	t, err := b.readByte()
	if err != nil {
		return h, err
	}
	if t&0x1f == 0x1f {
		return h, malformedf("BER: high tag number")
	}
	h.tag = t
	h.raw[0] = t
	l, err := b.readByte()
	if err != nil {
		return h, err
	}
	h.raw[1] = l
	h.rawLen = 2
	switch {
	case l < 0x80:
		h.length = int64(l)
	case l == 0x80:
		if !h.constructed() {
			return h, malformedf("BER: indefinite length on a primitive element")
		}
		h.indefinite = true
	default:
		n := int(l & 0x7f)
		if n > 8 {
			return h, tooLargef("BER: length of %d octets", n)
		}
		for range n {
			c, err := b.readByte()
			if err != nil {
				return h, err
			}
			h.raw[h.rawLen] = c
			h.rawLen++
			if h.length > (1<<62)>>8 {
				return h, tooLargef("BER: length overflows")
			}
			h.length = h.length<<8 | int64(c)
		}
	}
	if t == 0 && (h.indefinite || h.length != 0) {
		return h, malformedf("BER: bad end-of-contents")
	}
	if !h.indefinite && len(b.stack) > 0 {
		if top := b.stack[len(b.stack)-1]; !top.indefinite && h.length > top.end-b.off {
			return h, malformedf("BER: element longer than its parent")
		}
	}
	if !h.indefinite && h.length > b.max-b.off {
		return h, tooLargef("stream exceeds the limit of %d bytes", b.max)
	}
	return h, nil
}

// peek returns the next tag, or 0 at the end of the enclosing element
// (its definite end, or end-of-contents, which is not consumed).
func (b *berStream) peek() (byte, error) {
	if len(b.stack) > 0 {
		if top := b.stack[len(b.stack)-1]; !top.indefinite {
			if b.off >= top.end {
				return 0, nil
			}
		}
	}
	p, err := b.r.Peek(1)
	if err != nil {
		return 0, eofMalformed(err)
	}
	return p[0], nil
}

// push enters a constructed element whose header was read.
func (b *berStream) push(h berHeader) error {
	if len(b.stack) >= b.depth {
		return tooLargef("BER: nesting deeper than %d", b.depth)
	}
	b.stack = append(b.stack, frame{indefinite: h.indefinite, end: b.off + h.length})
	return nil
}

// open reads a constructed element's header, which must have tag, and
// enters it.
func (b *berStream) open(tag byte, what string) error {
	h, err := b.header()
	if err != nil {
		return err
	}
	if h.tag != tag {
		return malformedf("%s: unexpected tag 0x%02x", what, h.tag)
	}
	return b.push(h)
}

// close leaves the innermost element, which must be at its end.
func (b *berStream) close(what string) error {
	top := b.stack[len(b.stack)-1]
	if top.indefinite {
		var eoc [2]byte
		if err := b.read(eoc[:]); err != nil {
			return err
		}
		if eoc != [2]byte{} {
			return malformedf("%s: trailing data", what)
		}
	} else if b.off != top.end {
		return malformedf("%s: trailing data", what)
	}
	b.stack = b.stack[:len(b.stack)-1]
	return nil
}

// element reads one whole element (header and content, indefinite
// lengths included) of at most limit bytes and returns its encoding.
func (b *berStream) element(limit int) ([]byte, error) {
	var out []byte
	if err := b.copyElement(&out, limit, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func (b *berStream) copyElement(out *[]byte, limit, depth int) error {
	if depth >= b.depth {
		return tooLargef("BER: nesting deeper than %d", b.depth)
	}
	h, err := b.header()
	if err != nil {
		return err
	}
	if h.tag == 0 {
		return malformedf("BER: unexpected end-of-contents")
	}
	*out = append(*out, h.raw[:h.rawLen]...)
	if !h.indefinite {
		if h.length > int64(limit-len(*out)) {
			return tooLargef("an element before the content exceeds %d bytes", limit)
		}
		n := len(*out)
		*out = append(*out, make([]byte, h.length)...)
		return b.read((*out)[n:])
	}
	for {
		p, err := b.r.Peek(2)
		if err != nil {
			return eofMalformed(err)
		}
		if p[0] == 0 && p[1] == 0 {
			var eoc [2]byte
			if err := b.read(eoc[:]); err != nil {
				return err
			}
			*out = append(*out, 0, 0)
			return nil
		}
		if len(*out) >= limit {
			return tooLargef("an element before the content exceeds %d bytes", limit)
		}
		if err := b.copyElement(out, limit, depth+1); err != nil {
			return err
		}
	}
}

// small reads one whole element that must have tag, normalised to DER
// (the tag and length included).
func (b *berStream) small(tag byte, limit int, what string) (cryptobyte.String, error) {
	t, err := b.peek()
	if err != nil {
		return nil, err
	}
	if t != tag {
		return nil, malformedf("%s: unexpected tag 0x%02x", what, t)
	}
	raw, err := b.element(limit)
	if err != nil {
		return nil, err
	}
	der, err := cms.NormaliseBER(raw, b.depth)
	if err != nil {
		if errors.Is(err, cms.ErrBERTooLarge) {
			return nil, tooLargef("%s: %s", what, berMessage(err))
		}
		return nil, malformedf("%s: %s", what, berMessage(err))
	}
	return cryptobyte.String(der), nil
}

// DecryptReader reads a CMS EnvelopedData (AES-CBC) from a stream and
// yields its plaintext as it goes, holding O(chunk) bytes, never the body:
// definite or indefinite lengths, a primitive encryptedContent or a
// constructed one of OCTET STRING segments (as `openssl cms -encrypt
// -stream` writes). NewDecryptReader reads everything before the content
// (RecipientInfos and the algorithm, bounded by Limits.MaxHeader),
// recovers the content key on the token, and leaves the token; Read then
// decrypts.
//
// The last plaintext block is held back until the content ends, then its
// padding is checked in constant time; a bad padding, like every other
// failure to decrypt, is ErrDecrypt. AES-CBC is not authenticated: a
// caller that gets an error from Read must discard everything read before
// it. AuthEnvelopedData is refused (ErrStreamGCM).
type DecryptReader struct {
	br       *berStream
	dec      cipher.BlockMode
	lim      Limits
	res      Result
	segments int
	// content: remaining bytes of the current primitive segment; base is
	// the stack depth the [0] encryptedContent was entered from (for a
	// constructed one), primitive says the content is one primitive
	// element.
	remaining int64
	base      int
	primitive bool
	contentIn bool // still inside encryptedContent
	ct        []byte
	ctLen     int // ciphertext gathered in ct, not yet decrypted
	pt        []byte
	held      bool // last is the last plaintext block, not yet released
	last      [aes.BlockSize]byte
	out       []byte
	err       error
}

// NewDecryptReader reads the message up to its content from r and
// recovers the content key with the first recipient find returns a key
// for (as Decrypt does: the same RecipientInfo, key transport and
// implicit-rejection code). chunk is the ciphertext decrypted at a time
// (0: DefaultStreamChunk). opts.InPlace has no meaning here.
func NewDecryptReader(ctx context.Context, r io.Reader, find Finder, opts DecryptOptions, chunk int) (*DecryptReader, error) {
	lim := opts.Limits.WithDefaults()
	if chunk <= 0 {
		chunk = DefaultStreamChunk
	}
	chunk = max(chunk/aes.BlockSize*aes.BlockSize, aes.BlockSize)
	br := &berStream{r: bufio.NewReaderSize(r, 16<<10), max: lim.MaxStream, depth: lim.MaxDepth}
	d := &DecryptReader{br: br, lim: lim}
	if err := d.readHeader(ctx, find, opts); err != nil {
		return nil, err
	}
	d.ct = make([]byte, chunk)
	d.pt = make([]byte, chunk+aes.BlockSize)
	return d, nil
}

// Result says which recipient and key opened the message; its Plaintext
// is nil (it was read through Read).
func (d *DecryptReader) Result() Result { return d.res }

func (d *DecryptReader) readHeader(ctx context.Context, find Finder, opts DecryptOptions) error {
	br := d.br
	if err := br.open(0x30, "ContentInfo"); err != nil {
		return err
	}
	oid, err := br.small(0x06, 64, "ContentInfo content type")
	if err != nil {
		return err
	}
	var ct asn1.ObjectIdentifier
	if !oid.ReadASN1ObjectIdentifier(&ct) {
		return malformedf("ContentInfo: bad content type")
	}
	switch {
	case ct.Equal(oidEnvelopedData()):
	case ct.Equal(oidAuthEnvelopedData()):
		return ErrStreamGCM
	default:
		return malformedf("content type %s is not enveloped-data", shortOID(ct))
	}
	if err := br.open(0xa0, "ContentInfo content"); err != nil {
		return err
	}
	if err := br.open(0x30, "EnvelopedData"); err != nil {
		return err
	}
	ver, err := br.small(0x02, 16, "EnvelopedData version")
	if err != nil {
		return err
	}
	var version int
	if !ver.ReadASN1Integer(&version) || version < 0 || version > 4 {
		return malformedf("bad version")
	}
	budget := d.lim.MaxHeader
	if t, err := br.peek(); err != nil {
		return err
	} else if t == 0xa0 {
		// originatorInfo: certificates and CRLs, not needed; read within
		// the header budget and dropped.
		raw, err := br.element(budget)
		if err != nil {
			return err
		}
		budget -= len(raw)
	}
	risEl, err := br.small(0x31, budget, "recipientInfos")
	if err != nil {
		return err
	}
	var ris cryptobyte.String
	if !risEl.ReadASN1(&ris, cbasn1.SET) {
		return malformedf("bad recipientInfos")
	}
	recipients, err := parseRecipientInfos(ris, d.lim)
	if err != nil {
		return err
	}
	if err := br.open(0x30, "encryptedContentInfo"); err != nil {
		return err
	}
	cto, err := br.small(0x06, 64, "encryptedContentInfo content type")
	if err != nil {
		return err
	}
	if !cto.ReadASN1ObjectIdentifier(&d.res.ContentType) {
		return malformedf("bad encryptedContentInfo")
	}
	algEl, err := br.small(0x30, 1024, "contentEncryptionAlgorithm")
	if err != nil {
		return err
	}
	var alg cryptobyte.String
	if !algEl.ReadASN1(&alg, cbasn1.SEQUENCE) {
		return malformedf("bad contentEncryptionAlgorithm")
	}
	c, iv, _, err := parseContentAlg(alg, false)
	if err != nil {
		return err
	}
	// The content's header comes before the key is used: a message with no
	// content costs no token operation.
	h, err := br.header()
	if err != nil {
		return err
	}
	switch h.tag {
	case 0x80: // [0] IMPLICIT, primitive
		d.primitive, d.remaining = true, h.length
	case 0xa0: // constructed: OCTET STRING segments
		d.base = len(br.stack)
		if err := br.push(h); err != nil {
			return err
		}
	default:
		return malformedf("no encryptedContent (detached content is not supported)")
	}
	d.contentIn = true
	o, err := openRecipient(ctx, recipients, c, find, opts)
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(o.cek)
	clear(o.cek)
	if err != nil {
		return err
	}
	d.dec = cipher.NewCBCDecrypter(block, iv)
	d.res.Cipher, d.res.KeyTransport, d.res.Recipient, d.res.Key = c, o.kt, o.index, o.key
	return nil
}

// next reads ciphertext into p: io.EOF at the end of the content.
func (d *DecryptReader) next(p []byte) (int, error) {
	br := d.br
	for {
		if d.remaining > 0 {
			n := int(min(int64(len(p)), d.remaining))
			if err := br.read(p[:n]); err != nil {
				return 0, err
			}
			d.remaining -= int64(n)
			return n, nil
		}
		if d.primitive || !d.contentIn {
			d.contentIn = false
			return 0, io.EOF
		}
		t, err := br.peek()
		if err != nil {
			return 0, err
		}
		if t == 0 {
			if err := br.close("encryptedContent"); err != nil {
				return 0, err
			}
			if len(br.stack) == d.base {
				d.contentIn = false
				return 0, io.EOF
			}
			continue
		}
		h, err := br.header()
		if err != nil {
			return 0, err
		}
		if d.segments++; d.segments > d.lim.MaxSegments {
			return 0, tooLargef("more than %d encryptedContent segments", d.lim.MaxSegments)
		}
		switch h.tag {
		case 0x04:
			d.remaining = h.length
		case 0x24: // a constructed segment of segments (BER allows it)
			if err := br.push(h); err != nil {
				return 0, err
			}
		default:
			return 0, malformedf("encryptedContent segment is not an OCTET STRING")
		}
	}
}

// trailer reads what follows the content: unprotectedAttrs (skipped,
// within MaxHeader), the ends of the containers, and then the end of the
// input.
func (d *DecryptReader) trailer() error {
	br := d.br
	if err := br.close("encryptedContentInfo"); err != nil {
		return err
	}
	t, err := br.peek()
	if err != nil {
		return err
	}
	if t == 0xa1 {
		if _, err := br.element(d.lim.MaxHeader); err != nil {
			return err
		}
	}
	for _, what := range []string{"EnvelopedData", "ContentInfo content", "ContentInfo"} {
		if err := br.close(what); err != nil {
			return err
		}
	}
	if _, err := br.r.Peek(1); err == nil {
		return malformedf("trailing data after the ContentInfo")
	} else if !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Read returns plaintext. Only after io.EOF has the padding been checked
// and the whole message read.
func (d *DecryptReader) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.fill()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

// fill decrypts the next chunk into out, or sets err.
func (d *DecryptReader) fill() {
	ended := false
	for d.ctLen < len(d.ct) {
		n, err := d.next(d.ct[d.ctLen:])
		if errors.Is(err, io.EOF) {
			ended = true
			break
		}
		if err != nil {
			d.fail(err)
			return
		}
		d.ctLen += n
	}
	whole := d.ctLen / aes.BlockSize * aes.BlockSize
	start := 0
	if d.held {
		// out is empty (fill runs only then), so pt is free again.
		copy(d.pt, d.last[:])
		start = aes.BlockSize
	}
	d.dec.CryptBlocks(d.pt[start:start+whole], d.ct[:whole])
	rest := copy(d.ct, d.ct[whole:d.ctLen])
	d.ctLen = rest
	all := d.pt[:start+whole]
	if !ended {
		// Release all but the last block, which may hold the padding.
		if len(all) < aes.BlockSize {
			return
		}
		d.out = all[:len(all)-aes.BlockSize]
		copy(d.last[:], all[len(all)-aes.BlockSize:])
		d.held = true
		return
	}
	if err := d.trailer(); err != nil {
		d.fail(err)
		return
	}
	// Unary Decrypt's checks, in the same order: a whole number of
	// blocks, at least one, then the padding in constant time.
	if rest != 0 || len(all) < aes.BlockSize {
		d.fail(ErrDecrypt)
		return
	}
	n, good := unpadPKCS7(all)
	if good != 1 {
		d.fail(ErrDecrypt)
		return
	}
	d.out = all[:n]
	d.held = false
	d.err = io.EOF
}

func (d *DecryptReader) fail(err error) {
	d.err = err
	d.out = nil
	clear(d.pt)
	clear(d.last[:])
}
