package pki_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
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
