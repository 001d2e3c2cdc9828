package envelope

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"sync"
)

// Key is a recipient's RSA private key as Decrypt needs it: the raw
// private-key operation only (c^d mod n, no padding removed; in pecet
// keystore.KeyDecrypter.DecryptRaw, CKM_RSA_X_509 on the token). The key
// itself never reaches this package.
type Key interface {
	Public() crypto.PublicKey
	DecryptRaw(ctx context.Context, ciphertext []byte) ([]byte, error)
}

// OAEPKey is implemented by keys whose token can decrypt RSA-OAEP itself
// (CKM_RSA_PKCS_OAEP), for OAEPToken and OAEPAuto.
type OAEPKey interface {
	SupportsOAEP(h crypto.Hash) bool
	DecryptContext(ctx context.Context, rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error)
}

// OAEPMode says where RSA-OAEP padding is removed.
type OAEPMode string

const (
	// OAEPAuto: on the token when it supports the hash (SupportsOAEP), else
	// raw. The default.
	OAEPAuto OAEPMode = "auto"
	// OAEPToken: always on the token (CKM_RSA_PKCS_OAEP); a hash the token
	// lacks (SoftHSM 2.6 and SHA-256) is ErrUnsupported.
	OAEPToken OAEPMode = "token"
	// OAEPRaw: raw RSA on the token, padding removed here in constant time.
	OAEPRaw OAEPMode = "raw"
)

// ParseOAEPMode accepts token, raw and auto ("" is auto).
func ParseOAEPMode(s string) (OAEPMode, error) {
	switch OAEPMode(s) {
	case "", OAEPAuto:
		return OAEPAuto, nil
	case OAEPToken, OAEPRaw:
		return OAEPMode(s), nil
	}
	return "", fmt.Errorf("%w: OAEP mode %q (use token, raw or auto)", ErrUnsupported, short(s))
}

// Finder returns the key for a recipient identifier, or (nil, nil) when
// the caller holds no such key. An error stops Decrypt and is returned as
// it is (the token is unavailable, say).
type Finder func(ctx context.Context, id RecipientID) (Key, error)

// DecryptOptions tune Decrypt. The zero value is usable.
type DecryptOptions struct {
	Limits Limits
	// OAEP is where OAEP padding is removed (default OAEPAuto). PKCS#1
	// v1.5 is always unpadded here: the token's CKM_RSA_PKCS reports bad
	// padding as an error, which is the Bleichenbacher oracle.
	OAEP OAEPMode
	// Rand is the random source handed to a token's own OAEP decryption
	// (default crypto/rand). Implicit rejection uses no randomness: its
	// keys are derived from the message (rejection.go).
	Rand io.Reader
	// InPlace lets CBC decryption write the plaintext over the message's
	// ciphertext (which shares memory with the input given to Parse when
	// that was DER) instead of a new body-sized buffer: for a caller that
	// owns the input and reads it no more, e.g. a server request. The
	// input is garbage afterwards, on failure too.
	InPlace bool
}

// Result is a decrypted message.
type Result struct {
	Plaintext   []byte
	ContentType asn1.ObjectIdentifier
	Cipher      Cipher
	// KeyTransport and Recipient (the index among Message.Recipients) say
	// which RecipientInfo was used, Key which key opened it.
	KeyTransport KeyTransport
	Recipient    int
	Key          Key
}

// Decrypt parses a CMS EnvelopedData or AuthEnvelopedData and decrypts it
// with the first recipient for which find returns a key.
func Decrypt(ctx context.Context, der []byte, find Finder, opts DecryptOptions) (*Result, error) {
	m, err := Parse(der, opts.Limits)
	if err != nil {
		return nil, err
	}
	return m.Decrypt(ctx, find, opts)
}

// Decrypt decrypts a parsed message; see the package Decrypt.
//
// Every failure after a key is found (RSA padding, content-key length,
// CBC padding, GCM tag, ciphertext length) is ErrDecrypt with nothing
// added, and the work done does not depend on which check failed: a bad
// RSA block yields a synthetic content key (RFC 3218 2.3.2), derived from
// the encrypted key and a secret bound to the private key, that then fails
// to decrypt the content like any other wrong key, the same way on every
// repeat (rejection.go).
func (m *Message) Decrypt(ctx context.Context, find Finder, opts DecryptOptions) (*Result, error) {
	o, err := openRecipient(ctx, m.Recipients, m.Cipher, find, opts)
	if err != nil {
		return nil, err
	}
	pt, ok := decryptContent(m, o.cek, opts.InPlace)
	clear(o.cek)
	if !ok {
		return nil, ErrDecrypt
	}
	return &Result{Plaintext: pt, ContentType: m.ContentType, Cipher: m.Cipher, KeyTransport: o.kt, Recipient: o.index, Key: o.key}, nil
}

// opened is the content key recovered from one RecipientInfo (the caller
// clears cek), and which recipient and key gave it.
type opened struct {
	cek   []byte
	index int
	kt    KeyTransport
	key   Key
}

// openRecipient finds the first recipient for which find returns a key
// and recovers the content key of c from it: the one path from
// RecipientInfo to content key for Decrypt and the streaming
// DecryptReader. A bad RSA block gives the synthetic key, never an error.
func openRecipient(ctx context.Context, recipients []Recipient, c Cipher, find Finder, opts DecryptOptions) (opened, error) {
	mode, err := ParseOAEPMode(string(opts.OAEP))
	if err != nil {
		return opened{}, err
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	for i, r := range recipients {
		key, err := find(ctx, r.ID)
		if err != nil {
			return opened{}, err
		}
		if key == nil {
			continue
		}
		if r.KeyTransport == "" {
			return opened{}, fmt.Errorf("%w: the recipientInfo for this key uses a key transport pecet does not decrypt (RSA-OAEP with SHA-1 or SHA-256, RSA PKCS#1 v1.5)", ErrUnsupported)
		}
		cek, err := unwrapKey(ctx, key, r, c.keyLen(), mode, rnd)
		if err != nil {
			return opened{}, err
		}
		return opened{cek: cek, index: i, kt: r.KeyTransport, key: key}, nil
	}
	return opened{}, ErrNoRecipient
}

// unwrapKey recovers the content key of keyLen bytes from one
// RecipientInfo, or the synthetic one (a PRF of the encrypted key under a
// secret bound to the private key, rejection.go) when anything about the
// RSA block is wrong. Its only errors are ones that do not depend on the ciphertext's
// secret content: a key that is not RSA, a token that cannot do what the
// configured mode demands, a token or random source that fails.
func unwrapKey(ctx context.Context, key Key, r Recipient, keyLen int, mode OAEPMode, rnd io.Reader) ([]byte, error) {
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the recipient key is not RSA", ErrUnsupported)
	}
	// The secret is fetched for every block, valid or not, so the work
	// does not depend on the padding (rejection.go).
	secret, err := rejectionSecret(ctx, key, pub, mode == OAEPToken)
	if err != nil {
		return nil, err
	}
	synthetic := syntheticKey(secret, r.KeyTransport, r.EncryptedKey, keyLen)
	defer clear(synthetic)
	var h crypto.Hash
	switch r.KeyTransport {
	case RSAOAEP:
		h = crypto.SHA256
	case RSAOAEPSHA1:
		h = crypto.SHA1
	}
	if h != 0 && mode != OAEPRaw && publicOK(pub, r.EncryptedKey) {
		ok, useToken := key.(OAEPKey)
		if useToken {
			useToken = ok.SupportsOAEP(h)
		}
		if mode == OAEPToken && !useToken {
			return nil, fmt.Errorf("%w: the token does not decrypt RSA-OAEP with %v (configure token.oaep raw or auto)", ErrUnsupported, h)
		}
		if useToken {
			var label []byte
			if len(r.Label) > 0 {
				label = r.Label
			}
			msg, err := ok.DecryptContext(ctx, rnd, r.EncryptedKey, &rsa.OAEPOptions{Hash: h, MGFHash: h, Label: label})
			if err != nil {
				// The token's refusal is the padding check's answer: the
				// synthetic key, like any bad block. A deadline is the
				// caller's and is reported as such.
				if ctxErr := ctx.Err(); ctxErr != nil {
					return nil, ctxErr
				}
				return sessionKey(nil, 0, 0, synthetic), nil
			}
			defer clear(msg)
			return sessionKey(msg, 1, 0, synthetic), nil
		}
	}
	block, valid, idx, err := rsaBlock(ctx, key, pub, r, h)
	if err != nil {
		return nil, err
	}
	defer clear(block)
	return sessionKey(block, valid, idx, synthetic), nil
}

// publicOK is the check on public data only (the modulus is public): an
// encrypted key must be k bytes and below n (RFC 8017 7.1.2 step 1, 7.2.2
// step 1).
func publicOK(pub *rsa.PublicKey, ek []byte) bool {
	return len(ek) == pub.Size() && new(big.Int).SetBytes(ek).Cmp(pub.N) < 0
}

// rsaBlock does the raw RSA operation on the token and checks the padding
// (OAEP with h, or PKCS#1 v1.5 when h is 0) in constant time. It returns
// the decoded block (the caller clears it), valid (1 or 0) and the index of
// the message in the block. An encrypted key that fails publicOK is
// invalid without asking the token. err is only a token failure.
func rsaBlock(ctx context.Context, key Key, pub *rsa.PublicKey, r Recipient, h crypto.Hash) (block []byte, valid, idx int, err error) {
	k := pub.Size()
	if !publicOK(pub, r.EncryptedKey) {
		return make([]byte, k), 0, 0, nil
	}
	em, err := key.DecryptRaw(ctx, r.EncryptedKey)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("envelope: raw RSA decryption: %w", err)
	}
	if len(em) != k {
		clear(em)
		return nil, 0, 0, fmt.Errorf("envelope: raw RSA decryption returned %d bytes for a %d-byte modulus", len(em), k)
	}
	if h == 0 {
		valid, idx = unpadPKCS1(em)
		return em, valid, idx, nil
	}
	block, valid, idx = unpadOAEP(em, h, r.Label)
	clear(em)
	return block, valid, idx, nil
}

// decryptContent decrypts the content with cek; ok is 0 on any failure.
func decryptContent(m *Message, cek []byte, inPlace bool) ([]byte, bool) {
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, false
	}
	if m.Cipher.gcm() {
		g, err := cipher.NewGCMWithTagSize(block, m.TagLen)
		if err != nil {
			return nil, false
		}
		sealed := make([]byte, 0, len(m.EncryptedContent)+len(m.MAC))
		sealed = append(append(sealed, m.EncryptedContent...), m.MAC...)
		pt, err := g.Open(sealed[:0], m.IV, sealed, m.AuthAttrs)
		if err != nil {
			return nil, false
		}
		return pt, true
	}
	ct := m.EncryptedContent
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, false
	}
	pt := ct
	if !inPlace {
		pt = make([]byte, len(ct))
	}
	cbcDecrypt(block, m.IV, pt, ct)
	n, good := unpadPKCS7(pt)
	if good != 1 {
		clear(pt)
		return nil, false
	}
	return pt[:n], true
}

// cbcParallelChunk is the least ciphertext a goroutine of cbcDecrypt
// takes: below it the goroutine costs more than it saves.
const cbcParallelChunk = 1 << 20

// cbcDecrypt is CBC decryption spread over the CPUs for large bodies. Go's
// CBC decrypter takes one block at a time (no pipelined AES-NI on amd64):
// ≈ 24 ms of the ≈ 74 ms a 10 MB Decrypt took through the service. Unlike
// encryption, CBC decryption parallelises: each plaintext block needs only
// its ciphertext block and the one before it, so a chunk starting at block
// i decrypts on its own with ciphertext block i-1 as its IV.
func cbcDecrypt(block cipher.Block, iv, pt, ct []byte) {
	cbcDecryptN(block, iv, pt, ct, min(runtime.GOMAXPROCS(0), len(ct)/cbcParallelChunk))
}

// cbcDecryptN decrypts in n chunks of whole blocks (n < 2: in one).
func cbcDecryptN(block cipher.Block, iv, pt, ct []byte, n int) {
	n = min(n, len(ct)/aes.BlockSize)
	if n < 2 {
		cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
		return
	}
	per := len(ct) / aes.BlockSize / n * aes.BlockSize
	// Each chunk's IV is the ciphertext block before it, copied before any
	// chunk starts: decrypting in place (pt == ct) overwrites it.
	ivs := make([][]byte, n)
	ivs[0] = iv
	for i := 1; i < n; i++ {
		ivs[i] = bytes.Clone(ct[i*per-aes.BlockSize : i*per])
	}
	var wg sync.WaitGroup
	for i := range n {
		start, end := i*per, (i+1)*per
		if i == n-1 {
			end = len(ct)
		}
		chunkIV := ivs[i]
		wg.Go(func() {
			cipher.NewCBCDecrypter(block, chunkIV).CryptBlocks(pt[start:end], ct[start:end])
		})
	}
	wg.Wait()
}

// unpadPKCS7 checks the CBC padding (RFC 5652 6.3) in time independent of
// the padding bytes and returns the content length and 1 when it is good.
func unpadPKCS7(pt []byte) (int, int) {
	last := pt[len(pt)-aes.BlockSize:]
	pad := int(last[len(last)-1])
	good := subtle.ConstantTimeLessOrEq(1, pad) & subtle.ConstantTimeLessOrEq(pad, aes.BlockSize)
	for i := range aes.BlockSize {
		// Bytes within the padding must equal pad.
		inPad := subtle.ConstantTimeLessOrEq(aes.BlockSize-pad, i)
		eq := subtle.ConstantTimeByteEq(last[i], byte(pad))
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	return len(pt) - subtle.ConstantTimeSelect(good, pad, 0), good
}
