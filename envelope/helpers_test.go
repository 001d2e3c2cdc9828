package envelope

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"
)

// softKey is a Key in memory, for tests of the protocol logic. The token
// path is tested with keystore in token_test.go.
type softKey struct{ k *rsa.PrivateKey }

func (s softKey) Public() crypto.PublicKey { return &s.k.PublicKey }

// DecryptRaw is c^d mod n by the CRT (RFC 8017 5.1.2), which is several
// times faster than one exponentiation by d and keeps the tests quick.
func (s softKey) DecryptRaw(_ context.Context, c []byte) ([]byte, error) {
	k := s.k
	if k.Precomputed.Dp == nil {
		k.Precompute()
	}
	p, q := k.Primes[0], k.Primes[1]
	ci := new(big.Int).SetBytes(c)
	m1 := new(big.Int).Exp(ci, k.Precomputed.Dp, p)
	m2 := new(big.Int).Exp(ci, k.Precomputed.Dq, q)
	h := new(big.Int).Sub(m1, m2)
	h.Mul(h, k.Precomputed.Qinv).Mod(h, p)
	m := h.Mul(h, q).Add(h, m2)
	return m.FillBytes(make([]byte, k.Size())), nil
}

// keyCache shares generated RSA keys between tests of one binary: key
// generation is the slow part.
var keyCache struct {
	sync.Mutex
	keys map[int][]*rsa.PrivateKey
}

func rsaKey(t testing.TB, bits, n int) *rsa.PrivateKey {
	t.Helper()
	keyCache.Lock()
	defer keyCache.Unlock()
	if keyCache.keys == nil {
		keyCache.keys = map[int][]*rsa.PrivateKey{}
	}
	for len(keyCache.keys[bits]) <= n {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		keyCache.keys[bits] = append(keyCache.keys[bits], k)
	}
	return keyCache.keys[bits][n]
}

type certOpts struct {
	usage     x509.KeyUsage
	notBefore time.Time
	notAfter  time.Time
	ski       []byte
}

// selfSigned makes a recipient certificate for key.
func selfSigned(t testing.TB, key *rsa.PrivateKey, cn string, o certOpts) *x509.Certificate {
	t.Helper()
	if o.usage == 0 {
		o.usage = x509.KeyUsageKeyEncipherment
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     o.usage,
		SubjectKeyId: o.ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type recipient struct {
	key  Key
	cert *x509.Certificate
}

// finderOf finds keys by matching their certificates.
func finderOf(rs ...recipient) Finder {
	return func(_ context.Context, id RecipientID) (Key, error) {
		for _, r := range rs {
			if id.Matches(r.cert) {
				return r.key, nil
			}
		}
		return nil, nil
	}
}

// wantDecryptErr checks err is exactly the oracle-free error.
func wantDecryptErr(t testing.TB, err error, what string) {
	t.Helper()
	if !errors.Is(err, ErrDecrypt) || err.Error() != ErrDecrypt.Error() {
		t.Fatalf("%s: got %v, want exactly %v", what, err, ErrDecrypt)
	}
}
