package envelope

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// BenchmarkPaddingOracle compares the time Decrypt takes for a message whose
// key-transport block unpads correctly with one whose block is random (bad
// padding, answered by implicit rejection), on a SoftHSM key. Each iteration
// decrypts one of each, in random order, and the benchmark reports Welch's t
// statistic over the two samples ("welch-t") with both means. This is the
// dudect approach: |t| staying under about 4.5 over many thousands of pairs
// (-benchtime=20000x) gives no evidence of a timing difference; a larger |t|
// is a lead to investigate, not a proof, because the token's own RSA time
// dominates and varies. It is a benchmark, never a timed test (docs/reliability.md "Decryption oracles").
func BenchmarkPaddingOracle(b *testing.B) {
	d, cert := benchKey(b)
	find := finderOf(recipient{d, cert})
	pub := cert.PublicKey.(*rsa.PublicKey)
	ctx := context.Background()
	for _, kt := range []KeyTransport{RSAPKCS1, RSAOAEP} {
		b.Run(string(kt), func(b *testing.B) {
			good, bad := oraclePair(b, cert, pub, kt)
			var tg, tb []float64
			for b.Loop() {
				first, second := good, bad
				swap := mrand.IntN(2) == 1
				if swap {
					first, second = bad, good
				}
				d1 := timeDecrypt(ctx, b, first, find, first == good)
				d2 := timeDecrypt(ctx, b, second, find, second == good)
				if swap {
					d1, d2 = d2, d1
				}
				tg, tb = append(tg, d1), append(tb, d2)
			}
			mg, vg := meanVar(tg)
			mb, vb := meanVar(tb)
			t := 0.0
			if se := math.Sqrt(vg/float64(len(tg)) + vb/float64(len(tb))); se > 0 {
				t = (mg - mb) / se
			}
			b.ReportMetric(t, "welch-t")
			b.ReportMetric(mg, "valid-µs")
			b.ReportMetric(mb, "badpad-µs")
		})
	}
}

// oraclePair makes a valid AES-256-GCM message and a copy whose encrypted
// key is a random number below the modulus: its RSA decryption has, with
// overwhelming probability, bad padding.
func oraclePair(b *testing.B, cert *x509.Certificate, pub *rsa.PublicKey, kt KeyTransport) (*Message, *Message) {
	der, err := Encrypt(make([]byte, 1024), []*x509.Certificate{cert}, Options{Cipher: AES256GCM, KeyTransport: kt})
	if err != nil {
		b.Fatal(err)
	}
	good, err := Parse(der, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	bad, err := Parse(der, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	r, err := rand.Int(rand.Reader, pub.N)
	if err != nil {
		b.Fatal(err)
	}
	bad.Recipients[0].EncryptedKey = r.FillBytes(make([]byte, (pub.N.BitLen()+7)/8))
	return good, bad
}

func timeDecrypt(ctx context.Context, b *testing.B, m *Message, find Finder, wantOK bool) float64 {
	t0 := time.Now()
	_, err := m.Decrypt(ctx, find, DecryptOptions{})
	d := time.Since(t0)
	if wantOK && err != nil {
		b.Fatal(err)
	}
	if !wantOK && !errors.Is(err, ErrDecrypt) {
		b.Fatalf("bad padding: %v, want ErrDecrypt", err)
	}
	return float64(d.Nanoseconds()) / 1e3
}

func meanVar(xs []float64) (mean, variance float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(xs)-1)
}
