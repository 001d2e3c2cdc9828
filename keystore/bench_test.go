package keystore_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// The sign benchmarks compare, one signature at a time, the raw token rate
// (C_SignInit/C_Sign on one session, nothing else), crypto11 (the library
// keystore does not use, as a yardstick) and keystore's KeySigner. The goal
// is keystore ≥ 0.9 × raw. Each sub-benchmark loads the module itself: no
// Store may be open while crypto11 runs, because crypto11 calls C_Initialize
// itself (failing on CKR_CRYPTOKI_ALREADY_INITIALIZED) and C_Finalize on
// Close.

func BenchmarkSignRSA2048(b *testing.B) { benchSign(b, keystore.RSA2048) }
func BenchmarkSignECP256(b *testing.B)  { benchSign(b, keystore.ECP256) }

func benchSign(b *testing.B, alg keystore.Algorithm) {
	cfg := softhsm.NewTokenConfig(b)
	ctx := context.Background()
	func() {
		s, err := keystore.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		enabledKey(b, s, "bench", keystore.PurposeSign, alg)
	}()
	digest := sha256.Sum256([]byte("pecet benchmark"))
	isRSA := alg == keystore.RSA2048

	b.Run("raw-pkcs11", func(b *testing.B) {
		s, err := keystore.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		p, sh, priv, done, err := keystore.RawKey(s, "bench", 1)
		if err != nil {
			b.Fatal(err)
		}
		defer done()
		mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
		data := digest[:]
		if isRSA {
			mech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}
			data = append(append([]byte{}, keystore.DigestInfoPrefixSHA256...), digest[:]...)
		}
		measure(b, func() error {
			if err := p.SignInit(sh, mech, priv); err != nil {
				return err
			}
			_, err := p.Sign(sh, data)
			return err
		})
	})

	b.Run("crypto11", func(b *testing.B) {
		c, err := crypto11.Configure(&crypto11.Config{Path: cfg.ModulePath, TokenLabel: cfg.TokenLabel, Pin: cfg.PIN})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		k, err := c.FindKeyPair([]byte("1"), []byte("bench"))
		if err != nil || k == nil {
			b.Fatalf("crypto11 FindKeyPair: %v", err)
		}
		measure(b, func() error {
			_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			return err
		})
	})

	b.Run("keystore", func(b *testing.B) {
		s, err := keystore.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		k, err := s.Signer(ctx, "bench", 0, keystore.PurposeSign)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func() error {
			_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			return err
		})
	})

	// As the server calls it: a request context that can end, so each
	// call runs on a goroutine of its own and the caller can leave at the
	// deadline (Store.withSession).
	b.Run("keystore-cancellable", func(b *testing.B) {
		s, err := keystore.Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		k, err := s.Signer(cctx, "bench", 0, keystore.PurposeSign)
		if err != nil {
			b.Fatal(err)
		}
		measure(b, func() error {
			_, err := k.Sign(rand.Reader, digest[:], crypto.SHA256)
			return err
		})
	})
}

// measure runs sign b.N times and reports signatures per second.
func measure(b *testing.B, sign func() error) {
	b.Helper()
	n := 0
	start := time.Now()
	for b.Loop() {
		if err := sign(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sig/s")
}
