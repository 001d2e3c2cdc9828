package keystore_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"math/big"
	"testing"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestDecrypt(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	enabledKey(t, s, "gateway-decrypt", keystore.PurposeDecrypt, keystore.RSA2048)
	k, err := s.Decrypter(ctx, "gateway-decrypt", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public().(*rsa.PublicKey)
	secret := []byte("a 32-byte AES-256 content key!!!")

	tests := []struct {
		name    string
		encrypt func() ([]byte, error)
		opts    crypto.DecrypterOpts
	}{
		{"PKCS1v15 nil opts", func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, pub, secret) }, nil},
		{"PKCS1v15 options", func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, pub, secret) }, &rsa.PKCS1v15DecryptOptions{}},
		{"PKCS1v15 session key", func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, pub, secret) }, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}},
		{"OAEP SHA-1", func() ([]byte, error) { return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, nil) }, &rsa.OAEPOptions{Hash: crypto.SHA1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := tt.encrypt()
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Decrypt(rand.Reader, ct, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, secret) {
				t.Errorf("Decrypt = %x, want %x", got, secret)
			}
		})
	}

	t.Run("OAEP label", func(t *testing.T) {
		// SoftHSM 2.6 fails OAEP with a non-empty label in C_Decrypt
		// (CKR_GENERAL_ERROR). CMS key transport (RFC 4055) uses the empty
		// label, so pecet never needs one; this records the behaviour.
		ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, []byte("L"))
		got, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1, Label: []byte("L")})
		if err == nil && !bytes.Equal(got, secret) {
			t.Errorf("labelled OAEP = %x", got)
		}
		t.Logf("labelled OAEP-SHA1: %v", err)
	})

	t.Run("PKCS1v15 session key, bad padding", func(t *testing.T) {
		// A garbage ciphertext yields a random key of the asked length,
		// not an error (no padding oracle at this layer).
		junk := make([]byte, pub.Size())
		junk[1] = 0x42
		got, err := k.Decrypt(rand.Reader, junk, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32})
		if err != nil || len(got) != 32 {
			t.Errorf("Decrypt(junk) = %d bytes, %v", len(got), err)
		}
	})

	t.Run("DecryptRaw is m^d mod n", func(t *testing.T) {
		m := new(big.Int).SetBytes([]byte("raw RSA, no padding at all"))
		c := new(big.Int).Exp(m, big.NewInt(int64(pub.E)), pub.N)
		got, err := k.DecryptRaw(ctx, c.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		want := m.FillBytes(make([]byte, pub.Size()))
		if !bytes.Equal(got, want) {
			t.Errorf("DecryptRaw = %x, want %x", got, want)
		}
		// And it is what a software OAEP-SHA256 unpadding would start from.
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
		em, err := k.DecryptRaw(ctx, ct)
		if err != nil || len(em) != pub.Size() || em[0] != 0 {
			t.Errorf("DecryptRaw(OAEP-SHA256) = %x, %v", em, err)
		}
	})

	t.Run("OAEP SHA-256 on SoftHSM", func(t *testing.T) {
		// SoftHSM 2.6 lists CKM_RSA_PKCS_OAEP but refuses SHA-256
		// parameters (CKR_ARGUMENTS_BAD): Decrypt says so with
		// ErrUnsupportedAlgorithm, SupportsOAEP learns it, and the envelope
		// layer falls back to DecryptRaw. Should a later SoftHSM accept it,
		// the decryption must simply be right.
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256})
		switch {
		case errors.Is(err, keystore.ErrUnsupportedAlgorithm):
			if k.SupportsOAEP(crypto.SHA256) {
				t.Error("SupportsOAEP(SHA-256) = true after the token refused it")
			}
			// Known now: refused again without asking the token.
			if _, err := k.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); !errors.Is(err, keystore.ErrUnsupportedAlgorithm) {
				t.Errorf("second OAEP-SHA256 Decrypt = %v", err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if !bytes.Equal(got, secret) || !k.SupportsOAEP(crypto.SHA256) {
				t.Errorf("OAEP-SHA256 = %x, SupportsOAEP %v", got, k.SupportsOAEP(crypto.SHA256))
			}
		}
		if !k.SupportsOAEP(crypto.SHA1) {
			t.Error("SupportsOAEP(SHA-1) = false")
		}
	})

	t.Run("fresh store probes OAEP", func(t *testing.T) {
		// SupportsOAEP before any Decrypt: answered by a trial decryption.
		k2, err := s.Decrypter(ctx, "gateway-decrypt", 1)
		if err != nil {
			t.Fatal(err)
		}
		if !k2.SupportsOAEP(crypto.SHA1) {
			t.Error("SupportsOAEP(SHA-1) = false")
		}
		if k2.SupportsOAEP(crypto.MD5) {
			t.Error("SupportsOAEP(MD5) = true")
		}
	})

	t.Run("signing key cannot decrypt", func(t *testing.T) {
		if _, err := s.Decrypter(ctx, "gateway-decrypt", 0); err != nil {
			t.Fatal(err)
		}
		enabledKey(t, s, "signer", keystore.PurposeSign, keystore.ECP256)
		if _, err := s.Decrypter(ctx, "signer", 0); !errors.Is(err, keystore.ErrWrongPurpose) {
			t.Errorf("Decrypter(sign key) = %v, want ErrWrongPurpose", err)
		}
	})
}
