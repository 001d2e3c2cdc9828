package signer

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// Golden files made by testdata/make.sh with OpenSSL 3.0; the certificates
// are valid until 2126.

func goldenSignatures() []string {
	return []string{"openssl-detached.p7s", "openssl-attached-ber.p7s"}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenContent(t testing.TB) []byte { return readTestdata(t, "content.txt") }

func goldenCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode(readTestdata(t, name))
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func goldenCA(t testing.TB) policy.Validator {
	pool := x509.NewCertPool()
	pool.AddCert(goldenCert(t, "ca.pem"))
	return policy.Basic{Roots: pool}
}

func TestGolden(t *testing.T) {
	content := goldenContent(t)
	signer := goldenCert(t, "signer.pem")
	sum := sha256.Sum256(content)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		file string
		opts VerifyOptions
	}{
		{"openssl-detached.p7s", VerifyOptions{Content: content, At: at}},
		{"openssl-detached.p7s", VerifyOptions{Digest: sum[:], At: at}},
		{"openssl-detached.p7s", VerifyOptions{Content: content}}, // at the signing time
		{"openssl-attached-ber.p7s", VerifyOptions{At: at}},
		{"openssl-attached-ber.p7s", VerifyOptions{At: at, Content: content}}, // must be the embedded content (TestAttachedContentGiven)
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			der := readTestdata(t, tc.file)
			sd, err := Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			if len(sd.SignerInfos) != 1 || len(sd.Certificates) != 1 || !sd.Certificates[0].Equal(signer) {
				t.Fatalf("%d signers, %d certificates", len(sd.SignerInfos), len(sd.Certificates))
			}
			tc.opts.Validator = goldenCA(t)
			v, err := Verify(der, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != policy.Valid || v.Subject != signer.Subject.String() || v.SigningTime.IsZero() || len(v.Chain) != 2 {
				t.Fatalf("%s %q %v chain %d %v", v.Status, v.Subject, v.SigningTime, len(v.Chain), v.Reasons)
			}
			if !tc.opts.At.IsZero() && !v.ValidatedAt.Equal(tc.opts.At) {
				t.Errorf("validated at %v", v.ValidatedAt)
			}
		})
	}
	if _, err := Verify(readTestdata(t, "openssl-detached.p7s"), VerifyOptions{}); !errors.Is(err, ErrContentMissing) {
		t.Errorf("detached without content: %v", err)
	}
}
