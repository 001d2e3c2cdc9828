package cades

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/signer"
)

// FuzzParse feeds the CAdES attribute parsers and the long-term
// verification hostile bytes: an error or a verdict, never a panic, and
// within the bounds (docs/security.md "CAdES augmentation").
func FuzzParse(f *testing.F) {
	w := newWorld(f)
	lta := w.augment(f, w.sign(f, filing, true), filing, LevelLTA).Signature
	f.Add(lta)
	f.Add(valueOf(f, lta, oidCertValues))
	f.Add(valueOf(f, lta, oidRevocationValues))
	f.Add(HashIndex{Hash: 0}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseCertValues(b)
		_, _ = ParseRevocationValues(b)
		_, _ = ParseHashIndex(b)
		if _, _, err := splitSignedData(b, signer.Limits{}); err == nil {
			_, _ = Verify(b, VerifyOptions{VerifyOptions: signer.VerifyOptions{Validator: w.engine, At: time.Now()}})
		}
	})
}

// TestMutatedLTA: bytes of an LTA signature changed at random (a fixed
// seed, 1,500 variants): an error or a verdict, never a panic, each in
// bounded time. It found an archive time-stamp whose imprint hash pecet
// does not know (crypto.Hash 0) making the imprint computation panic.
func TestMutatedLTA(t *testing.T) {
	w := newWorld(t)
	lta := w.augment(t, w.sign(t, filing, true), filing, LevelLTA).Signature
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 1500 {
		b := bytes.Clone(lta)
		for range 1 + r.IntN(3) {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		start := time.Now()
		_, _ = Verify(b, VerifyOptions{VerifyOptions: signer.VerifyOptions{Validator: w.engine, At: time.Now()}})
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("variant %d took %v", i, d)
		}
	}
}
