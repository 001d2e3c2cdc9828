package policy

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// opensslV1CRL runs a small `openssl ca`: a CA, a leaf it issues and
// revokes, and `openssl ca -gencrl` without CRL extensions, which writes a
// version 1 CRL. It returns the CA, the leaf and the CRL (PEM).
func opensslV1CRL(t *testing.T) (ca, leaf *x509.Certificate, crlPEM []byte) {
	t.Helper()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := os.WriteFile(p("index.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cnf := `[ca]
default_ca = CA_default
[CA_default]
dir = ` + dir + `
database = $dir/index.txt
new_certs_dir = $dir
certificate = $dir/ca.pem
private_key = $dir/ca-key.pem
serial = $dir/serial
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
[policy_any]
commonName = supplied
`
	if err := os.WriteFile(p("ca.cnf"), []byte(cnf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("serial"), []byte("1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testtool.RunOpenSSL(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", p("ca-key.pem"), "-out", p("ca.pem"), "-subj", "/CN=OpenSSL v1 CRL CA", "-days", "30",
		"-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	testtool.RunOpenSSL(t, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", p("leaf-key.pem"), "-out", p("leaf.csr"), "-subj", "/CN=Revoked leaf")
	testtool.RunOpenSSL(t, "ca", "-batch", "-config", p("ca.cnf"), "-in", p("leaf.csr"), "-out", p("leaf.pem"), "-notext")
	testtool.RunOpenSSL(t, "ca", "-batch", "-config", p("ca.cnf"), "-revoke", p("leaf.pem"))
	testtool.RunOpenSSL(t, "ca", "-batch", "-config", p("ca.cnf"), "-gencrl", "-out", p("v1.crl"))
	text := string(testtool.RunOpenSSL(t, "crl", "-in", p("v1.crl"), "-noout", "-text"))
	if !strings.Contains(text, "Version 1 (0x0)") {
		t.Fatalf("openssl wrote no v1 CRL:\n%s", text)
	}
	read := func(n string) *x509.Certificate {
		b, err := os.ReadFile(p(n))
		if err != nil {
			t.Fatal(err)
		}
		return mustCert(t, pemOrDER(b, "CERTIFICATE"))
	}
	crl, err := os.ReadFile(p("v1.crl"))
	if err != nil {
		t.Fatal(err)
	}
	return read("ca.pem"), read("leaf.pem"), crl
}

// TestV1CRL: a version 1 CRL (what `openssl ca -gencrl` writes without
// CRL extensions; OpenSSL and DSS read them) is read, its signature
// checked, and its entries used.
func TestV1CRL(t *testing.T) {
	ca, leaf, crlPEM := opensslV1CRL(t)
	crl, err := ParseCRL(crlPEM)
	if err != nil {
		t.Fatalf("ParseCRL: %v", err)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Fatal(err)
	}
	if err := crl.RL.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("v1 CRL signature: %v", err)
	}
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{ca}, Revocation: RevocationRequire, CRLs: []*CRL{crl}})
	if err != nil {
		t.Fatal(err)
	}
	v := e.Validate(Request{Leaf: leaf, At: time.Now()})
	if v.Status != Invalid || v.Reasons[0].Code != CodeRevoked {
		t.Fatalf("leaf revoked by a v1 CRL: %s %v", v.Status, v.Reasons)
	}
	// The same CRL with a byte of its signed part changed fails the check.
	der := pemOrDER(crlPEM, "X509 CRL")
	bad := append([]byte(nil), der...)
	i := strings.Index(string(bad), "OpenSSL v1 CRL CA")
	bad[i] ^= 1
	if c, err := ParseCRL(bad); err == nil && c.RL.CheckSignatureFrom(ca) == nil {
		t.Fatal("a changed v1 CRL verifies")
	}
}
