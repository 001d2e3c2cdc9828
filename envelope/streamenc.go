package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// DefaultStreamChunk is the plaintext an EncryptWriter puts in one
// encryptedContent segment, and the ciphertext a DecryptReader decrypts at
// a time: large enough that the per-segment overhead (a 4-byte header, one
// Write) is noise, small enough that a stream holds O(64 KiB), not the body.
const DefaultStreamChunk = 64 << 10

// ErrStreamGCM: AES-GCM (AuthEnvelopedData) is not streamed. Its tag
// authenticates the content only at the end, so a streaming decrypter
// would either release unauthenticated plaintext (what GCM exists to
// prevent) or hold the whole body (what streaming exists to avoid); the
// unary Encrypt and Decrypt do GCM up to the message limit.
var ErrStreamGCM = errors.New("envelope: AES-GCM (AuthEnvelopedData) is not streamed; use the unary Encrypt/Decrypt or AES-CBC")

// ErrClosed: a Write after Close.
var ErrClosed = errors.New("envelope: write to a closed EncryptWriter")

// EncryptWriter encrypts what is written to it into a CMS EnvelopedData
// (AES-CBC, RFC 5652 6.1, RFC 3565) on the underlying writer, without ever
// holding the body: BER with indefinite lengths and the encryptedContent
// as a constructed OCTET STRING of segments, the shape `openssl cms
// -encrypt -stream` writes. Close writes the padded last block and the
// end-of-contents octets; the message is complete only after Close
// returns nil.
type EncryptWriter struct {
	w      io.Writer
	enc    cipher.BlockMode
	header []byte // written with the first segment
	chunk  int
	buf    []byte // plaintext gathered, len < chunk between calls
	out    []byte // one segment: header and ciphertext
	n      int64
	max    int64
	err    error
}

// streamEOC closes the [0] encryptedContent, EncryptedContentInfo,
// EnvelopedData, the ContentInfo's [0] and the ContentInfo.
var streamEOC = [10]byte{}

// NewEncryptWriter checks the recipients and encrypts a fresh content key
// to each, as Encrypt does (the same checks and options), and returns a
// writer for the content. Only CBC ciphers are streamed (ErrStreamGCM);
// the zero opts.Cipher is AES256CBC.
// opts.Limits.MaxStream bounds the content (ErrTooLarge); MaxBody does
// not apply. chunk is the plaintext per segment (0: DefaultStreamChunk;
// rounded down to whole AES blocks). Nothing is written before the first
// Write or Close.
func NewEncryptWriter(w io.Writer, recipients []*x509.Certificate, opts Options, chunk int) (*EncryptWriter, error) {
	// The zero Cipher is AES-256-CBC here, not Encrypt's GCM: GCM cannot
	// be streamed safely (ErrStreamGCM).
	c, kt, err := algorithms(opts, AES256CBC)
	if err != nil {
		return nil, err
	}
	if c.gcm() {
		return nil, ErrStreamGCM
	}
	if chunk <= 0 {
		chunk = DefaultStreamChunk
	}
	chunk = max(chunk/aes.BlockSize*aes.BlockSize, aes.BlockSize)
	sl, err := seal(c, kt, recipients, opts)
	if err != nil {
		return nil, err
	}
	defer clear(sl.cek)
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(sl.rnd, iv); err != nil {
		return nil, fmt.Errorf("envelope: random IV: %w", err)
	}
	block, err := aes.NewCipher(sl.cek)
	if err != nil {
		return nil, err
	}
	header, err := streamHeader(c, sl.ris, iv)
	if err != nil {
		return nil, err
	}
	return &EncryptWriter{
		w: w, enc: cipher.NewCBCEncrypter(block, iv), header: header, chunk: chunk,
		buf: make([]byte, 0, chunk+aes.BlockSize),
		out: make([]byte, 0, chunk+aes.BlockSize+8),
		max: opts.Limits.WithDefaults().MaxStream,
	}, nil
}

// streamHeader is everything before the first encryptedContent segment.
// The RecipientInfos and the algorithm are small and written DER; the
// containers that hold the content have indefinite lengths.
func streamHeader(c Cipher, ris [][]byte, iv []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 128+len(ris)*600))
	b.AddBytes([]byte{0x30, 0x80}) // ContentInfo
	b.AddASN1ObjectIdentifier(oidEnvelopedData())
	b.AddBytes([]byte{0xa0, 0x80, 0x30, 0x80}) // [0] EXPLICIT, EnvelopedData
	b.AddASN1Int64(0)
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, ri := range sortedSet(ris) {
			b.AddBytes(ri)
		}
	})
	b.AddBytes([]byte{0x30, 0x80}) // EncryptedContentInfo
	b.AddASN1ObjectIdentifier(oidData())
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(cipherOID(c))
		b.AddASN1OctetString(iv)
	})
	b.AddBytes([]byte{0xa0, 0x80}) // [0] IMPLICIT OCTET STRING, constructed
	return b.Bytes()
}

// Write encrypts p; a full chunk goes out as one segment.
func (e *EncryptWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if int64(len(p)) > e.max-e.n {
		e.fail(tooLargef("stream content exceeds the limit of %d bytes", e.max))
		return 0, e.err
	}
	written := 0
	for len(p) > 0 {
		k := copy(e.buf[len(e.buf):e.chunk], p)
		e.buf = e.buf[:len(e.buf)+k]
		p = p[k:]
		written += k
		e.n += int64(k)
		if len(e.buf) == e.chunk {
			// A full chunk is whole blocks: it can go now, and the padding
			// goes in the last segment whatever it holds (a whole block
			// of padding after content of whole blocks, RFC 5652 6.3).
			if err := e.segment(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// Close pads and writes the last segment and the end-of-contents octets.
// Nothing written (an empty content) is ErrEmptyContent, as for Encrypt,
// and then nothing has reached the underlying writer.
func (e *EncryptWriter) Close() error {
	if e.err != nil {
		if errors.Is(e.err, ErrClosed) {
			return nil
		}
		return e.err
	}
	if e.n == 0 {
		e.fail(ErrEmptyContent)
		return e.err
	}
	pad := aes.BlockSize - len(e.buf)%aes.BlockSize
	for range pad {
		e.buf = append(e.buf, byte(pad))
	}
	if err := e.segment(); err != nil {
		return err
	}
	if _, err := e.w.Write(streamEOC[:]); err != nil {
		e.fail(err)
		return err
	}
	e.fail(ErrClosed)
	return nil
}

// segment encrypts buf (whole blocks) and writes it as one primitive
// OCTET STRING, after the header if it has not gone yet.
func (e *EncryptWriter) segment() error {
	if e.header != nil {
		if _, err := e.w.Write(e.header); err != nil {
			e.fail(err)
			return err
		}
		e.header = nil
	}
	e.out = appendTL(e.out[:0], 0x04, len(e.buf))
	h := len(e.out)
	e.out = e.out[:h+len(e.buf)]
	e.enc.CryptBlocks(e.out[h:], e.buf)
	clear(e.buf)
	e.buf = e.buf[:0]
	if _, err := e.w.Write(e.out); err != nil {
		e.fail(err)
		return err
	}
	return nil
}

// fail makes err sticky and erases the plaintext still held.
func (e *EncryptWriter) fail(err error) {
	e.err = err
	clear(e.buf[:cap(e.buf)])
	e.buf = e.buf[:0]
}

// appendTL appends a tag and a definite DER length.
func appendTL(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n < 1<<8:
		return append(b, 0x81, byte(n))
	case n < 1<<16:
		return append(b, 0x82, byte(n>>8), byte(n))
	case n < 1<<24:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
