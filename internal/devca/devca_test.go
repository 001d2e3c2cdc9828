package devca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestIssue: each kind gets the key usage and extended key usage its users
// check (TLS, openssl cms -verify, RFC 3161 2.3's one critical
// timeStamping EKU), and the certificate chains to the CA.
func TestIssue(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("devca test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind Kind
		ku   x509.KeyUsage
		eku  []x509.ExtKeyUsage
	}{
		{TLSServer, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{TLSClient, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{CMSSign, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}},
		{CMSDecrypt, x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}},
		{TSA, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}},
		{Audit, x509.KeyUsageDigitalSignature, nil},
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, tc := range tests {
		c, err := ca.Issue("leaf", tc.kind, key.Public(), now)
		if err != nil {
			t.Fatal(err)
		}
		if c.KeyUsage != tc.ku || !slices.Equal(c.ExtKeyUsage, tc.eku) {
			t.Errorf("kind %d: key usage %v, EKU %v; want %v, %v", tc.kind, c.KeyUsage, c.ExtKeyUsage, tc.ku, tc.eku)
		}
		critical := false
		for _, e := range c.Extensions {
			critical = critical || (e.Id.Equal(oidExtKeyUsage) && e.Critical)
		}
		if critical != (tc.kind == TSA) {
			t.Errorf("kind %d: EKU critical %v", tc.kind, critical)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: now}); err != nil {
			t.Errorf("kind %d: %v", tc.kind, err)
		}
	}
}

// TestLoadOrCreateCA: the first call makes the CA in the folder, the next
// one reads the same CA back.
func TestLoadOrCreateCA(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	a, err := LoadOrCreateCA(cert, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateCA(cert, key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !a.Cert.Equal(b.Cert) || !a.Key.Public().(*ecdsa.PublicKey).Equal(b.Key.Public()) {
		t.Fatal("the CA read back is not the one made")
	}
}
