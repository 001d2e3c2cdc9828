package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
)

// TestDevAugment: pecet augment from the user's side (docs/archive.md
// "CAdES augmentation"): a signature made with --timestamp, raised to LTA
// with a CRL of the dev CA, verifies with revocation required and no CRL
// given, and pecet verify names the level and the proof of existence.
func TestDevAugment(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	in := write(t, work, "filing.xml", filing)
	ca, err := devca.LoadOrCreateCA(filepath.Join(d.dir, "ca.pem"), filepath.Join(d.dir, "ca-key.pem"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour)}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crlFile := write(t, work, "ca.crl", string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})))
	sig, lta := filepath.Join(work, "f.p7s"), filepath.Join(work, "f-lta.p7s")
	if _, errs, code := d.run(t, "sign", "--key", "client-sign", "--in", in, "--out", sig, "--timestamp"); code != 0 {
		t.Fatalf("sign: exit %d: %s", code, errs)
	}
	if out, errs, code := d.run(t, "augment", "--level", "lt", "--in", sig, "--content", in, "--out", lta); code == 0 || !strings.Contains(errs, "FailedPrecondition") {
		t.Fatalf("augment without a CRL: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code := d.run(t, "augment", "--level", "lta", "--in", sig, "--content", in, "--crl", crlFile, "--out", lta)
	if code != 0 || !strings.Contains(out, "level:         CAdES-BASELINE-LTA") || !strings.Contains(out, "archive-time-stamp-v3") {
		t.Fatalf("augment: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = d.run(t, "verify", "--in", lta, "--content", in, "--revocation", "require")
	if code != 0 || !strings.Contains(out, "VALID\n") || !strings.Contains(out, "level:         CAdES-BASELINE-LTA, proof of existence ") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	if out, err := openssl(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", lta, "-content", in, "-CAfile", filepath.Join(d.dir, "ca.pem"), "-out", "/dev/null"); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
}
