package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// keyKind names a test key type.
type keyKind string

const (
	rsa2048 keyKind = "RSA-2048"
	p256    keyKind = "P-256"
	p384    keyKind = "P-384"
)

func newKey(t testing.TB, k keyKind) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch k {
	case rsa2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case p256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case p384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// testCA is a certification authority made for one test.
type testCA struct {
	key    crypto.Signer
	cert   *x509.Certificate
	serial int64
}

func newCA(t testing.TB, name string, notBefore, notAfter time.Time) *testCA {
	t.Helper()
	key := newKey(t, p256)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"pecet test"}, Country: []string{"CZ"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, cert: cert, serial: 1}
}

// issue makes a signing certificate for key.
func (ca *testCA) issue(t testing.TB, key crypto.Signer, name string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	ca.serial++
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ski := sha256.Sum256(spki)
	tmpl := &x509.Certificate{
		// A large serial, as real CAs use, exercises the INTEGER encoding.
		SerialNumber: new(big.Int).Lsh(big.NewInt(ca.serial), 100),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"pecet test"}, Country: []string{"CZ"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		SubjectKeyId: ski[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func (ca *testCA) validator() policy.Validator {
	return policy.Basic{Roots: ca.pool()}
}

// signerFixture is a key with a certificate valid now.
type signerFixture struct {
	ca   *testCA
	key  crypto.Signer
	cert *x509.Certificate
}

func newSigner(t testing.TB, k keyKind) signerFixture {
	t.Helper()
	now := time.Now()
	ca := newCA(t, "pecet test CA "+string(k), now.AddDate(-5, 0, 0), now.AddDate(5, 0, 0))
	key := newKey(t, k)
	return signerFixture{ca: ca, key: key, cert: ca.issue(t, key, "pecet test signer "+string(k), now.Add(-time.Hour), now.AddDate(1, 0, 0))}
}

func (f signerFixture) chain() []*x509.Certificate { return []*x509.Certificate{f.cert, f.ca.cert} }

// writeFile writes a file into dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func keyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func hasReason(v policy.Verdict, c policy.Code) bool {
	for _, r := range v.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}
