package cades

import (
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
		if x, err := ParseHashIndex(b); err == nil && len(x.Certificates)+len(x.CRLs)+len(x.UnsignedAttrValues) > 3*MaxHashIndexEntries {
			t.Fatal("hash index beyond its bound")
		}
		if _, _, err := splitSignedData(b, signer.Limits{}); err == nil {
			_, _ = Verify(b, VerifyOptions{VerifyOptions: signer.VerifyOptions{Validator: w.engine, At: time.Now()}})
		}
	})
}
