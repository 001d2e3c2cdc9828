package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDevTimestamp: the TSA of `pecetd --dev` from the user's side (docs/tsa.md):
// openssl ts -query, POST /tsa, openssl ts -verify; pecet timestamp and
// timestamp verify; pecet sign --timestamp, verified by pecet and openssl.
func TestDevTimestamp(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	in := write(t, work, "filing.xml", filing)
	ca := filepath.Join(d.dir, "ca.pem")
	tsaPEM := filepath.Join(d.dir, "tsa.pem")

	for _, opts := range [][]string{{"-cert"}, {"-cert", "-no_nonce"}, {}, {"-no_nonce"}} {
		t.Run("openssl "+strings.Join(opts, " "), func(t *testing.T) {
			q := filepath.Join(t.TempDir(), "q.tsq")
			args := append([]string{"ts", "-query", "-data", in, "-sha256", "-out", q}, opts...)
			if out, err := openssl(t, args...); err != nil {
				t.Fatalf("openssl ts -query: %v\n%s", err, out)
			}
			body, _ := os.ReadFile(q)
			resp, err := http.Post("http://"+d.http+"/tsa", "application/timestamp-query", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/timestamp-reply" {
				t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			r := write(t, t.TempDir(), "r.tsr", b.String())
			if out, err := openssl(t, "ts", "-verify", "-in", r, "-queryfile", q, "-CAfile", ca, "-untrusted", tsaPEM); err != nil {
				t.Fatalf("openssl ts -verify: %v\n%s", err, out)
			}
		})
	}

	t.Run("pecet timestamp and timestamp verify", func(t *testing.T) {
		tsr := filepath.Join(work, "filing.tsr")
		if _, errs, code := d.run(t, "timestamp", "--in", in, "--out", tsr, "--nonce", "--cert"); code != 0 {
			t.Fatalf("pecet timestamp: exit %d: %s", code, errs)
		}
		out, errs, code := d.run(t, "timestamp", "verify", "--in", tsr, "--data", in)
		if code != 0 || !strings.Contains(out, "VALID\n") || !strings.Contains(out, "timestamp:") {
			t.Fatalf("timestamp verify: exit %d\n%s%s", code, out, errs)
		}
		if out, err := openssl(t, "ts", "-verify", "-in", tsr, "-data", in, "-CAfile", ca, "-untrusted", tsaPEM); err != nil {
			t.Fatalf("openssl ts -verify of pecet timestamp: %v\n%s", err, out)
		}
		// The token alone: signature, chain and genTime, and the imprint it covers.
		if out, errs, code := d.run(t, "timestamp", "verify", "--in", tsr); code != 0 || !strings.Contains(out, "imprint:       SHA-256 ") {
			t.Fatalf("timestamp verify without data: exit %d\n%s%s", code, out, errs)
		}
		other := write(t, work, "other.xml", strings.Replace(filing, "Jana", "Jane", 1))
		if out, _, code := d.run(t, "timestamp", "verify", "--in", tsr, "--data", other); code != 1 || !strings.Contains(out, "DIGEST_MISMATCH") {
			t.Fatalf("other data: exit %d\n%s", code, out)
		}
		// Without certificates in the token the dev folder's tsa.pem is used.
		bare := filepath.Join(work, "bare.tsr")
		if _, errs, code := d.run(t, "timestamp", "--in", in, "--out", bare, "--hash", "sha512"); code != 0 {
			t.Fatalf("pecet timestamp --hash sha512: exit %d: %s", code, errs)
		}
		if out, errs, code := d.run(t, "timestamp", "verify", "--in", bare, "--data", in); code != 0 {
			t.Fatalf("verify without embedded certificate: exit %d\n%s%s", code, out, errs)
		}
		if out, _, code := d.run(t, "timestamp", "verify", "--in", bare, "--data", in, "--tsa-cert", ca); code != 3 {
			t.Fatalf("with only the CA as TSA certificate: want INDETERMINATE exit 3, got %d\n%s", code, out)
		}
	})

	t.Run("sign --timestamp (CAdES-T)", func(t *testing.T) {
		sig := filepath.Join(work, "filing-t.p7s")
		if _, errs, code := d.run(t, "sign", "--key", "client-sign", "--in", in, "--out", sig, "--timestamp"); code != 0 {
			t.Fatalf("sign --timestamp: exit %d: %s", code, errs)
		}
		out, errs, code := d.run(t, "verify", "--in", sig, "--content", in)
		if code != 0 || !strings.HasPrefix(out, "VALID\n") || !strings.Contains(out, "timestamp:") {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
		}
		if out, err := openssl(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", in, "-CAfile", ca, "-out", os.DevNull); err != nil {
			t.Fatalf("openssl cms -verify of a CAdES-T signature: %v\n%s", err, out)
		}
		printed, err := openssl(t, "cms", "-cmsout", "-print", "-inform", "DER", "-in", sig)
		if err != nil || !strings.Contains(printed, "id-smime-aa-timeStampToken") && !strings.Contains(printed, "1.2.840.113549.1.9.16.2.14") {
			t.Fatalf("no signature-time-stamp attribute:\n%s", printed)
		}
	})
}
