package envelope

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// The benchmarks decrypt with a key on SoftHSM (raw RSA on the token,
// OAEP-SHA256 unpadded here) and report, besides MB/s, messages per second
// next to the raw token RSA rate of the same key measured right after
// (keystore's KeyDecrypter.Baseline: C_Decrypt with CKM_RSA_X_509 on a
// dedicated session, nothing else). For small bodies the ratio says what
// pecet's CMS work costs on top of the token; for large ones AES
// dominates. No figure is asserted.

var benchSizes = []int{1 << 10, 10 << 20}

func benchKey(b *testing.B) (*keystore.KeyDecrypter, *x509.Certificate) {
	s := softhsm.NewToken(b)
	return importKey(b, s, "bench", rsaKey(b, 2048, 0))
}

func report(b *testing.B, d *keystore.KeyDecrypter, n int, elapsed time.Duration) {
	b.Helper()
	rate := float64(n) / elapsed.Seconds()
	raw, err := d.Baseline(context.Background(), 1, max(elapsed, 200*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate, "msg/s")
	b.ReportMetric(raw, "raw-rsa/s")
	b.ReportMetric(rate/raw, "ratio")
}

func BenchmarkEncrypt(b *testing.B) {
	d, cert := benchKey(b)
	for _, size := range benchSizes {
		for _, c := range []Cipher{AES256CBC, AES256GCM} {
			b.Run(fmt.Sprintf("%s/%dB", c, size), func(b *testing.B) {
				data := make([]byte, size)
				rand.Read(data)
				b.SetBytes(int64(size))
				start := time.Now()
				for b.Loop() {
					if _, err := Encrypt(data, []*x509.Certificate{cert}, Options{Cipher: c}); err != nil {
						b.Fatal(err)
					}
				}
				report(b, d, b.N, time.Since(start))
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	d, cert := benchKey(b)
	ctx := context.Background()
	for _, size := range benchSizes {
		for _, c := range []Cipher{AES256CBC, AES256GCM} {
			b.Run(fmt.Sprintf("%s/%dB", c, size), func(b *testing.B) {
				data := make([]byte, size)
				rand.Read(data)
				der, err := Encrypt(data, []*x509.Certificate{cert}, Options{Cipher: c})
				if err != nil {
					b.Fatal(err)
				}
				find := finderOf(recipient{d, cert})
				b.SetBytes(int64(size))
				start := time.Now()
				for b.Loop() {
					if _, err := Decrypt(ctx, der, find, DecryptOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				report(b, d, b.N, time.Since(start))
			})
		}
	}
}
