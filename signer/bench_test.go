package signer

import (
	"crypto"
	"testing"
)

// BenchmarkSignRSA2048 keeps the CMS overhead around the RSA operation
// visible: allocations per signature, for a 64 KiB attached content.
func BenchmarkSignRSA2048(b *testing.B) {
	f := newSigner(b, rsa2048)
	content := make([]byte, 64<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		if _, err := Sign(content, f.key, f.chain(), Options{Hash: crypto.SHA256, Attached: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyRSA2048(b *testing.B) {
	f := newSigner(b, rsa2048)
	content := make([]byte, 64<<10)
	sig, err := Sign(content, f.key, f.chain(), Options{Attached: true})
	if err != nil {
		b.Fatal(err)
	}
	opts := VerifyOptions{Validator: f.ca.validator()}
	b.ReportAllocs()
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		if _, err := Verify(sig, opts); err != nil {
			b.Fatal(err)
		}
	}
}
