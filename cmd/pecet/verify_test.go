package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestDecodeSignatureInput: pecet verify --in takes DER or PEM; a DER
// signature whose attached content is itself a PEM file (a certificate sent
// for filing, after a line of text) is DER and goes to the server as it is,
// not as the PEM block inside its content.
func TestDecodeSignatureInput(t *testing.T) {
	dir := t.TempDir()
	key, cert := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	testtool.RunOpenSSL(t, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=signer", "-days", "1", "-keyout", key, "-out", cert)
	certPEM, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	content := filepath.Join(dir, "content.txt")
	if err := os.WriteFile(content, append([]byte("the certificate for filing:\n"), certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	der := filepath.Join(dir, "sig.p7s")
	testtool.RunOpenSSL(t, "cms", "-sign", "-nodetach", "-binary", "-in", content, "-signer", cert, "-inkey", key, "-outform", "DER", "-out", der)
	pemSig := filepath.Join(dir, "sig.pem")
	testtool.RunOpenSSL(t, "cms", "-cmsout", "-inform", "DER", "-in", der, "-outform", "PEM", "-out", pemSig)
	derBytes, err := os.ReadFile(der)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(pemSig)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"DER with PEM content", derBytes},
		{"PEM", pemBytes},
		{"PEM after whitespace", append([]byte("\n  \n"), pemBytes...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decodeSignature(tc.in); !bytes.Equal(got, derBytes) {
				t.Errorf("decodeSignature: %d bytes, want the %d bytes of the DER signature", len(got), len(derBytes))
			}
		})
	}
}
