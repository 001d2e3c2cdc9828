package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/reporttest"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/report"
)

// TestValidationReportCLI: `pecet verify --report FILE` and `pecet chain
// verify --report FILE` write an ETSI TS 119 102-2 report for VALID,
// INVALID (digest mismatch, revoked) and INDETERMINATE (no chain;
// revocation unknown without a POE) verdicts on signatures made with the
// dev SoftHSM token; the printed verdict and --json are unchanged.
func TestValidationReportCLI(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	content := "<PRIHL>personal data, never in a report</PRIHL>"
	in := write(t, work, "doc.xml", content)
	other := write(t, work, "other.xml", "<PRIHL>other</PRIHL>")
	sig := filepath.Join(work, "doc.p7s")
	if _, errs, code := d.run(t, "sign", "--key", "client-sign", "--in", in, "--out", sig); code != 0 {
		t.Fatalf("sign: %s", errs)
	}
	leaf := filepath.Join(d.dir, "client-sign.pem")
	crlFile := devV1CRL(t, d.dir, work, leaf)
	crlPEM, err := os.ReadFile(crlFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(crlPEM)
	if blk == nil {
		t.Fatal("the CRL is not PEM")
	}
	stranger := testtool.Vectors(t, "nist-pkits", "certs", "ValidCertificatePathTest1EE.crt")
	cases := []struct {
		name    string
		args    []string
		code    int
		main    string
		sub     string
		proof   string
		object  []byte // an object the report must name by digest
		printed string
	}{
		{"verify valid", []string{"verify", "--in", sig, "--content", in}, 0, report.TotalPassed, "", report.POEValidation, nil, "VALID"},
		{"verify digest mismatch", []string{"verify", "--in", sig, "--content", other}, 1, report.TotalFailed, "HASH_FAILURE", report.POEValidation, nil, "DIGEST_MISMATCH"},
		// Signed before the revocation, the only proof of existence (--at)
		// after it: nothing proves the signature existed while the
		// certificate was good (docs/security.md "Revocation and proof of
		// existence").
		{"verify revoked, proof of existence after the revocation", []string{"verify", "--in", sig, "--content", in, "--crl", crlFile, "--at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, 3, report.Indeterminate, "REVOKED_NO_POE", report.POEProvided, blk.Bytes, "REVOKED_NO_POE"},
		{"verify revocation unknown, no POE", []string{"verify", "--in", sig, "--content", in, "--revocation", "require"}, 3, report.Indeterminate, "TRY_LATER", report.POEValidation, nil, "REVOCATION_UNKNOWN"},
		{"chain valid", []string{"chain", "verify", "--cert", leaf, "--purpose", "signing"}, 0, report.TotalPassed, "", report.POEValidation, nil, "VALID"},
		{"chain revoked", []string{"chain", "verify", "--cert", leaf, "--crl", crlFile}, 1, report.TotalFailed, "REVOKED", report.POEValidation, blk.Bytes, "REVOKED"},
		{"chain no chain", []string{"chain", "verify", "--cert", stranger}, 3, report.Indeterminate, "NO_CERTIFICATE_CHAIN_FOUND", report.POEValidation, nil, "INDETERMINATE"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(work, "report"+string(rune('a'+i))+".xml")
			out, errs, code := d.run(t, append(tc.args, "--report", file)...)
			if code != tc.code || !strings.Contains(out, tc.printed) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.printed, out, errs)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte("personal data")) {
				t.Fatal("the report holds the signed content")
			}
			r := reporttest.CheckValidationReport(t, data)
			s := r.Reports[0]
			if s.Status.MainIndication != tc.main {
				t.Fatalf("main indication %s, want %s\n%s", s.Status.MainIndication, tc.main, data)
			}
			if tc.sub != "" && !strings.Contains(strings.Join(s.Status.SubIndications, " "), report.SubIndicationPrefix+tc.sub) {
				t.Errorf("sub-indications %v lack %s", s.Status.SubIndications, tc.sub)
			}
			if got := s.TimeInfo.BestSignatureTime.TypeOfProof; got != tc.proof {
				t.Errorf("proof type %s, want %s", got, tc.proof)
			}
			if tc.object != nil {
				want := sha256.Sum256(tc.object)
				found := false
				for _, o := range r.Objects.Objects {
					found = found || bytes.Equal(o.Representation.DigestAlgAndValue.Value, want[:])
				}
				if !found {
					t.Errorf("the CRL used is not among the report's objects:\n%s", data)
				}
			}
		})
	}
	// --json keeps the short form on stdout; the report goes to its file.
	file := filepath.Join(work, "json-report.xml")
	out, errs, code := d.run(t, "verify", "--in", sig, "--content", in, "--json", "--report", file)
	var v struct{ Status string }
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Status != "VALID" {
		t.Fatalf("--json with --report: exit %d\n%s%s", code, out, errs)
	}
	if data, err := os.ReadFile(file); err != nil || !bytes.Contains(data, []byte(report.TotalPassed)) {
		t.Fatalf("report beside --json: %v", err)
	}
	if _, errs, code := d.run(t, "verify", "--in", sig, "--content", in, "--report", "-"); code != 2 || !strings.Contains(errs, "--report needs a file") {
		t.Fatalf("--report -: exit %d %s", code, errs)
	}
}
