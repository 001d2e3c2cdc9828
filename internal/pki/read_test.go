package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/pki"
)

func TestReadCertificates(t *testing.T) {
	ca, err := devca.NewCA("read test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("leaf", devca.TLSClient, k.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := write("big.pem", bytes.Repeat([]byte{'A'}, pki.MaxCertificateFile+1))
	tests := []struct {
		name    string
		data    []byte
		path    string // instead of data
		want    int
		wantErr string
	}{
		{name: "one", data: certPEM(ca.Cert.Raw), want: 1},
		{name: "bundle with a key between", data: bytes.Join([][]byte{certPEM(leaf.Raw), keyPEM, certPEM(ca.Cert.Raw)}, nil), want: 2},
		{name: "only a key", data: keyPEM, wantErr: "no PEM certificates"},
		{name: "empty", data: nil, wantErr: "no PEM certificates"},
		{name: "DER is not PEM", data: ca.Cert.Raw, wantErr: "no PEM certificates"},
		{name: "garbage second", data: append(certPEM(ca.Cert.Raw), certPEM([]byte("junk"))...), wantErr: "certificate 2:"},
		{name: "too large", path: big, wantErr: "larger than"},
		{name: "missing", path: filepath.Join(dir, "nope.pem"), wantErr: "nope.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.path
			if p == "" {
				p = write(strings.ReplaceAll(tt.name, " ", "_")+".pem", tt.data)
			}
			certs, err := pki.ReadCertificates(p)
			pool, perr := pki.ReadPool(p)
			if tt.wantErr != "" {
				if err == nil || perr == nil {
					t.Fatalf("got %d certificates, want error %q", len(certs), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), filepath.Base(p)) {
					t.Fatalf("error %q: want %q and the file name", err, tt.wantErr)
				}
				return
			}
			if err != nil || perr != nil {
				t.Fatalf("pki.ReadCertificates: %v; pki.ReadPool: %v", err, perr)
			}
			if len(certs) != tt.want || pool == nil {
				t.Fatalf("got %d certificates, want %d", len(certs), tt.want)
			}
		})
	}
	// Several files keep their order.
	a, b := write("a.pem", certPEM(leaf.Raw)), write("b.pem", certPEM(ca.Cert.Raw))
	certs, err := pki.ReadCertificates(a, b)
	if err != nil || len(certs) != 2 || !certs[0].Equal(leaf) || !certs[1].Equal(ca.Cert) {
		t.Fatalf("pki.ReadCertificates(a, b) = %d certificates, %v", len(certs), err)
	}
}

// selfSigned is a throwaway certificate and its key, made here so that
// these tests do not depend on the dev CA.
func selfSigned(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "read test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

// TestDecodeFiles: the one reader of PEM or DER files the CLI uses (a
// certificate, a bundle, a CRL, a CMS message, a key file): what each form
// gives, and that every refusal names the file.
func TestDecodeFiles(t *testing.T) {
	c, k := selfSigned(t)
	c2, _ := selfSigned(t)
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	spki, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	crl := []byte{0x30, 0x03, 0x02, 0x01, 0x01} // a SEQUENCE: only the envelope is judged
	bundle := bytes.Join([][]byte{[]byte("Certificate:\n    text as openssl x509 -text writes it\n"), block("CERTIFICATE", c.Raw), block("PRIVATE KEY", []byte{1}), block("CERTIFICATE", c2.Raw)}, nil)
	// A DER SEQUENCE whose content holds a PEM file is DER, not PEM.
	derWithPEM := append([]byte{0x30, 0x82, 0, 0}, append([]byte("x\n"), block("CERTIFICATE", c.Raw)...)...)
	derWithPEM[2], derWithPEM[3] = byte((len(derWithPEM)-4)>>8), byte(len(derWithPEM)-4)
	for _, tc := range []struct {
		name    string
		data    []byte
		pem     bool
		one     int    // pki.DecodeOne with no types: bytes, or -1 for an error
		crl     string // pki.DecodeOne(X509 CRL): "" ok, else the error
		certs   int    // pki.CertificatesDER, -1 error
		parsed  int    // pki.ParseCertificateFile, -1 error
		keys    int    // pki.PublicKeys, -1 error
		wantErr string // in every error
	}{
		{name: "DER certificate", data: c.Raw, one: len(c.Raw), crl: "", certs: 1, parsed: 1, keys: -1},
		{name: "PEM bundle after text", data: bundle, pem: true, one: len(c.Raw), crl: `no PEM "X509 CRL" block`, certs: 2, parsed: 2, keys: 1},
		{name: "PEM CRL", data: block("X509 CRL", crl), pem: true, one: len(crl), certs: -1, parsed: -1, keys: -1, crl: ""},
		{name: "DER CRL", data: crl, one: len(crl), certs: 1, parsed: -1, keys: -1, crl: ""},
		{name: "PUBLIC KEY", data: block("PUBLIC KEY", spki), pem: true, one: len(spki), crl: "X509 CRL", certs: -1, parsed: -1, keys: 1},
		{name: "certificate and key", data: append(block("CERTIFICATE", c.Raw), block("PUBLIC KEY", spki)...), pem: true, one: len(c.Raw), crl: "X509 CRL", certs: 1, parsed: 1, keys: 2},
		{name: "DER holding PEM content", data: derWithPEM, one: len(derWithPEM), crl: "", certs: 1, parsed: -1, keys: -1},
		{name: "garbage", data: []byte("this is not a certificate"), one: -1, crl: "neither PEM nor DER", certs: -1, parsed: -1, keys: -1},
		{name: "broken PEM", data: []byte("-----BEGIN CERTIFICATE-----\n@@@\n"), pem: true, one: -1, crl: "X509 CRL", certs: -1, parsed: -1, keys: -1},
		{name: "DER with trailing bytes", data: append(slices.Clone(c.Raw), 0), one: -1, crl: "neither PEM nor DER", certs: -1, parsed: -1, keys: -1},
		{name: "bad certificate in PEM", data: block("CERTIFICATE", crl), pem: true, one: len(crl), crl: "X509 CRL", certs: 1, parsed: -1, keys: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const name = "f.pem"
			check := func(what string, n int, err error, want int) {
				t.Helper()
				switch {
				case want < 0 && err == nil:
					t.Errorf("%s: %d, want an error", what, n)
				case want < 0 && !strings.Contains(err.Error(), name):
					t.Errorf("%s: error %q does not name the file", what, err)
				case want >= 0 && (err != nil || n != want):
					t.Errorf("%s: %d, %v; want %d", what, n, err, want)
				}
			}
			if got := pki.IsPEM(tc.data); got != tc.pem {
				t.Errorf("pki.IsPEM = %v, want %v", got, tc.pem)
			}
			one, err := pki.DecodeOne(name, tc.data)
			check("pki.DecodeOne", len(one), err, tc.one)
			_, err = pki.DecodeOne(name, tc.data, "X509 CRL")
			if (err == nil) != (tc.crl == "") || err != nil && !strings.Contains(err.Error(), tc.crl) {
				t.Errorf("pki.DecodeOne(X509 CRL): %v, want %q", err, tc.crl)
			}
			certs, err := pki.CertificatesDER(name, tc.data)
			check("pki.CertificatesDER", len(certs), err, tc.certs)
			parsed, err := pki.ParseCertificateFile(name, tc.data)
			check("pki.ParseCertificateFile", len(parsed), err, tc.parsed)
			keys, err := pki.PublicKeys(name, tc.data)
			check("pki.PublicKeys", len(keys), err, tc.keys)
		})
	}
}

// FuzzDecodeFiles: no input makes the PEM/DER reader panic, and what it
// returns lies within its input's bounds (it never allocates more than a
// PEM block of the input holds).
func FuzzDecodeFiles(f *testing.F) {
	c, _ := selfSigned(f)
	f.Add(c.Raw)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	f.Add([]byte("-----BEGIN X509 CRL-----\nMAMCAQE=\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x80, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if one, err := pki.DecodeOne("f", data); err == nil && len(one) > len(data) {
			t.Fatalf("pki.DecodeOne: %d bytes from %d", len(one), len(data))
		}
		_, _ = pki.DecodeOne("f", data, "X509 CRL")
		if certs, err := pki.CertificatesDER("f", data); err == nil && len(certs) > len(data) {
			t.Fatalf("pki.CertificatesDER: %d certificates from %d bytes", len(certs), len(data))
		}
		_, _ = pki.ParseCertificateFile("f", data)
		_, _ = pki.PublicKeys("f", data)
	})
}
