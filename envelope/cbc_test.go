package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
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
			})
		}
	}
}
