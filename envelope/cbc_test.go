package envelope

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"testing"
)

// TestCBCDecryptChunks: decryption split into chunks gives the plaintext of
// one sequential CBC decryption, whatever the split (uneven, more chunks
// than blocks).
func TestCBCDecryptChunks(t *testing.T) {
	key := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	rand.Read(key)
	rand.Read(iv)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, blocks := range []int{1, 2, 3, 7, 1000, 65537} {
		pt := make([]byte, blocks*aes.BlockSize)
		rand.Read(pt)
		ct := make([]byte, len(pt))
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, pt)
		for _, n := range []int{0, 1, 2, 3, 4, 16} {
			t.Run(fmt.Sprintf("%d-blocks/%d-chunks", blocks, n), func(t *testing.T) {
				got := make([]byte, len(ct))
				cbcDecryptN(block, iv, got, ct, n)
				if !bytes.Equal(got, pt) {
					t.Fatal("plaintext differs")
				}
				inPlace := bytes.Clone(ct)
				cbcDecryptN(block, iv, inPlace, inPlace, n)
				if !bytes.Equal(inPlace, pt) {
					t.Fatal("plaintext decrypted in place differs")
				}
			})
		}
	}
}

// TestDecryptInPlace: with InPlace the plaintext comes back right (small
// and chunked bodies) and occupies the input's memory; without it the
// input is left as it was.
func TestDecryptInPlace(t *testing.T) {
	k := rsaKey(t, 2048, 0)
	cert := selfSigned(t, k, "in place", certOpts{})
	find := finderOf(recipient{softKey{k}, cert})
	for _, size := range []int{1, 4096, 3<<20 + 5} {
		data := make([]byte, size)
		rand.Read(data)
		der, err := Encrypt(data, []*x509.Certificate{cert}, Options{Cipher: AES256CBC})
		if err != nil {
			t.Fatal(err)
		}
		orig := bytes.Clone(der)
		res, err := Decrypt(context.Background(), der, find, DecryptOptions{})
		if err != nil || !bytes.Equal(res.Plaintext, data) || !bytes.Equal(der, orig) {
			t.Fatalf("%d bytes: copy: err %v, plaintext ok %v, input kept %v", size, err, err == nil && bytes.Equal(res.Plaintext, data), bytes.Equal(der, orig))
		}
		res, err = Decrypt(context.Background(), der, find, DecryptOptions{InPlace: true})
		if err != nil || !bytes.Equal(res.Plaintext, data) {
			t.Fatalf("%d bytes: in place: err %v", size, err)
		}
		if !bytes.Contains(der, res.Plaintext[:min(size, 64)]) {
			t.Errorf("%d bytes: the plaintext is not in the input's memory", size)
		}
	}
}
