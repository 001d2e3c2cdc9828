package keystore_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
)

// testCA is a software CA that certifies token keys in tests.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pecet test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, cert: cert}
}

// issue certifies pub.
func (ca *testCA) issue(t testing.TB, cn string, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// enabledKey creates alias and certifies version 1, so it can be used.
func enabledKey(t testing.TB, s *keystore.Store, alias string, p keystore.Purpose, a keystore.Algorithm) keystore.Version {
	t.Helper()
	ctx := context.Background()
	v, err := s.CreateKey(ctx, alias, p, a)
	if err != nil {
		t.Fatalf("CreateKey(%s, %s, %s): %v", alias, p, a, err)
	}
	ca := newCA(t)
	v, err = s.ImportCertificate(ctx, alias, v.Version, []*x509.Certificate{ca.issue(t, alias, v.Public), ca.cert})
	if err != nil {
		t.Fatalf("ImportCertificate(%s): %v", alias, err)
	}
	return v
}
