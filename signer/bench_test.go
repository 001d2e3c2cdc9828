package signer

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
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

// BenchmarkSignDigestP256 is the service's hot path without the token: a
// SignedData over a client digest with a software P-256 key and the
// self-check sampled out, so what it shows beside ECDSA is pecet's CMS
// encoding (allocations per signature).
func BenchmarkSignDigestP256(b *testing.B) {
	f := newSigner(b, p256)
	digest := make([]byte, 32)
	opts := Options{Hash: crypto.SHA256, ECDSACheck: &Sampler{Every: 1 << 30}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignDigest(digest, f.key, f.chain(), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckOwnSignatureRSA is the RSA self-check every signature
// pecet makes goes through (CheckOwnSignature, SHA-256), alone: the same
// key over and over, as under sign load (docs/performance.md).
func BenchmarkCheckOwnSignatureRSA(b *testing.B) {
	for _, bits := range []int{2048, 4096} {
		b.Run(fmt.Sprintf("RSA-%d", bits), func(b *testing.B) {
			key, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				b.Fatal(err)
			}
			digest := sha256.Sum256([]byte("pecet"))
			sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := CheckOwnSignature(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
