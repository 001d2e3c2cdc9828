package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBatchCLI: `pecet sign --digest-file` and `pecet timestamp --batch`
// against pecetd --dev: one output per digest line, named by its line;
// every CMS verifies with OpenSSL over its file, every token with
// `openssl ts -verify`; a bad line fails alone (exit 4, the line named);
// and `pecet bench` counts items for the batch ops.
func TestBatchCLI(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	ca := filepath.Join(d.dir, "ca.pem")
	// Lines: 1 a comment, 2-4 files 0-2, 5 blank, 6 a digest too short,
	// 7-8 files 3-4.
	lines := []string{"# sha256sum output"}
	files := map[int]string{} // digest file line -> data file
	for i := range 5 {
		if i == 3 {
			lines = append(lines, "", "abcd  too-short")
		}
		f := write(t, work, fmt.Sprintf("filing-%d.xml", i), fmt.Sprintf("<PRIHL><employee dep=\"%d\"/></PRIHL>\n", i))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		lines = append(lines, hex.EncodeToString(sum[:])+"  "+f)
		files[len(lines)] = f
	}
	list := strings.Join(lines, "\n") + "\n"
	listFile := write(t, work, "list.sha256", list)

	t.Run("sign", func(t *testing.T) {
		out := filepath.Join(work, "sigs")
		stdout, stderr, code := d.run(t, "sign", "--key", "client-sign", "--digest-file", listFile, "--out", out)
		if code != 4 || !strings.Contains(stderr, "line 6: InvalidArgument") || !strings.Contains(stderr, "signed 5 of 6") {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		for line, f := range files {
			sig := filepath.Join(out, fmt.Sprintf("%06d.p7s", line))
			if o, err := openssl(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", f, "-CAfile", ca, "-out", os.DevNull); err != nil {
				t.Fatalf("line %d: %v\n%s", line, err, o)
			}
		}
		if _, err := os.Stat(filepath.Join(out, "000006.p7s")); err == nil {
			t.Error("the bad line has an output")
		}
	})
	t.Run("sign raw", func(t *testing.T) {
		out := filepath.Join(work, "raw")
		if _, stderr, code := d.run(t, "sign", "--key", "client-sign", "--digest-file", listFile, "--out", out, "--raw"); code != 4 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		pub := filepath.Join(work, "pub.pem")
		if o, err := openssl(t, "x509", "-in", filepath.Join(d.dir, "client-sign.pem"), "-pubkey", "-noout", "-out", pub); err != nil {
			t.Fatal(o)
		}
		for line, f := range files {
			sig := filepath.Join(out, fmt.Sprintf("%06d.sig", line))
			if o, err := openssl(t, "dgst", "-sha256", "-verify", pub, "-signature", sig, f); err != nil {
				t.Fatalf("line %d: %v\n%s", line, err, o)
			}
		}
	})
	t.Run("timestamp", func(t *testing.T) {
		out := filepath.Join(work, "tsr")
		stdout, stderr, code := d.run(t, "timestamp", "--batch", listFile, "--out", out, "--nonce", "--cert")
		if code != 4 || !strings.Contains(stderr, "line 6: rejected (badDataFormat)") || !strings.Contains(stderr, "time-stamped 5 of 6") {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		for line, f := range files {
			tsr := filepath.Join(out, fmt.Sprintf("%06d.tsr", line))
			if o, err := openssl(t, "ts", "-verify", "-in", tsr, "-data", f, "-CAfile", ca); err != nil {
				t.Fatalf("line %d: %v\n%s", line, err, o)
			}
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"sign", "--key", "client-sign", "--digest-file", listFile},                                        // no --out
			{"sign", "--key", "client-sign", "--digest-file", listFile, "--out", work, "--in", listFile},       // both
			{"sign", "--key", "client-sign", "--digest-file", listFile, "--out", work, "--raw", "--timestamp"}, // raw has no attributes
			{"sign", "--key", "client-sign", "--in", listFile, "--raw"},                                        // raw without a digest file
			{"timestamp", "--batch", listFile},                                                                 // no --out
			{"bench", "--op", "sign-digests", "--batch", "1001"},
		} {
			if _, _, code := d.run(t, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2", args, code)
			}
		}
	})
	for _, op := range []string{"sign-digests", "timestamp-batch"} {
		t.Run("bench "+op, func(t *testing.T) {
			stdout, stderr, code := d.run(t, "bench", "--op", op, "--batch", "16", "--duration", "1s", "--warmup", "0s", "--concurrency", "2", "--json", "--baseline")
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			var r struct {
				Ops       int64            `json:"ops"`
				Calls     int64            `json:"calls"`
				Batch     int              `json:"batch"`
				Rate      float64          `json:"ops_per_s"`
				CallRate  float64          `json:"calls_per_s"`
				Errors    map[string]int64 `json:"errors"`
				Wrong     int64            `json:"wrong"`
				Ratio     float64          `json:"ratio"`
				Noop      float64          `json:"noop_ops_per_s"`
				Ceiling   float64          `json:"ceiling_ops_per_s"`
				CeilRatio float64          `json:"ceiling_ratio"`
				RawConc   int              `json:"baseline_concurrency"`
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			if r.Batch != 16 || r.Calls == 0 || r.Ops != 16*r.Calls || r.Rate != 16*r.CallRate || len(r.Errors) != 0 || r.Wrong != 0 {
				t.Fatalf("result %s", stdout)
			}
			if r.Ratio <= 0 || r.Noop <= 0 || r.Ceiling <= 0 || r.CeilRatio <= 0 {
				t.Fatalf("no baseline: %s", stdout)
			}
			// Like with like: the raw rate is measured at the items'
			// parallelism (2 calls of 16 items on the default pool of 16
			// sessions), not at the 2 callers'.
			if r.RawConc != 16 {
				t.Fatalf("baseline_concurrency %d, want 16: %s", r.RawConc, stdout)
			}
		})
	}
}
