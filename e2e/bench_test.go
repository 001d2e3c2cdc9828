package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBench runs `pecet bench` briefly for each operation and checks that it
// measured something, without errors, and that --baseline gives a ratio.
// No rate is asserted: speed is reported, not tested.
func TestBench(t *testing.T) {
	d := startDev(t)
	t.Run("mix", func(t *testing.T) { benchMixAudited(t, d) })
	// The same reconciliation with the write-ahead fsync policy: a restart
	// with audit.sync: begin on a fresh audit file (the event policy's log
	// is kept aside, verified). The restart belongs to the whole test (its
	// cleanup stops pecetd at the end), and the subtests below use it.
	d.stop(t)
	cfg := filepath.Join(d.dir, "pecet.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withBegin := strings.Replace(string(b), "  file: audit.log", "  sync: begin\n  flush_interval: 50ms\n  file: audit.log", 1)
	if withBegin == string(b) {
		t.Fatal("dev config has no audit.file line to extend")
	}
	if err := os.WriteFile(cfg, []byte(withBegin), 0o600); err != nil {
		t.Fatal(err)
	}
	d.verifyAudit(t, filepath.Join(d.dir, "audit.log"))
	if err := os.Rename(filepath.Join(d.dir, "audit.log"), filepath.Join(d.dir, "audit-event.log")); err != nil {
		t.Fatal(err)
	}
	d = restartDev(t, d)
	t.Run("mix-sync-begin", func(t *testing.T) {
		benchMixAudited(t, d)
		d.verifyAudit(t, filepath.Join(d.dir, "audit.log"))
	})
	// Operations without a token operation of their own have no baseline:
	// verify works on public keys, encrypt too, noop does no crypto.
	noBaseline := map[string]bool{"verify": true, "encrypt": true, "encrypt-stream": true, "noop": true}
	for _, op := range []string{"sign", "sign-digest", "verify", "encrypt", "decrypt", "encrypt-stream", "decrypt-stream", "timestamp", "timestamp-http", "noop"} {
		t.Run(op, func(t *testing.T) {
			dur := "500ms"
			if op == "noop" {
				dur = "1s"
			}
			args := []string{"bench", "--op", op, "--duration", dur, "--warmup", "0s", "--concurrency", "2", "--connections", "2", "--json"}
			if !noBaseline[op] {
				args = append(args, "--baseline")
			}
			out, errs, code := d.run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
			var r struct {
				Ops    int64            `json:"ops"`
				Rate   float64          `json:"ops_per_s"`
				Errors map[string]int64 `json:"errors"`
				Ratio  *float64         `json:"ratio"`
				Wrong  *int64           `json:"wrong"`
				// The no-op rate and the ceiling it makes with the raw
				// rate (docs/performance.md, "Method").
				Noop      *float64 `json:"noop_ops_per_s"`
				Ceiling   *float64 `json:"ceiling_ops_per_s"`
				CeilRatio *float64 `json:"ceiling_ratio"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if r.Ops == 0 || r.Rate <= 0 || len(r.Errors) != 0 || r.Wrong == nil || *r.Wrong != 0 {
				t.Fatalf("result %s", out)
			}
			if !noBaseline[op] && (r.Ratio == nil || *r.Ratio <= 0) {
				t.Fatalf("no ratio: %s", out)
			}
			if !noBaseline[op] && (r.Noop == nil || *r.Noop <= 0 || r.Ceiling == nil || *r.Ceiling <= 0 || r.CeilRatio == nil || *r.CeilRatio <= 0) {
				t.Fatalf("no ceiling: %s", out)
			}
		})
	}
	// A large body through both envelope directions, GCM this time: the
	// decrypted body must come back whole, or the call fails.
	t.Run("decrypt-large", func(t *testing.T) {
		out, errs, code := d.run(t, "bench", "--op", "decrypt", "--size", "2m", "--cipher", "aes256-gcm", "--duration", "1s", "--warmup", "0s", "--concurrency", "2", "--json")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		var r struct {
			Size int     `json:"size"`
			MBs  float64 `json:"mb_per_s"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if r.Size != 2<<20 || r.MBs <= 0 {
			t.Fatalf("result %s", out)
		}
	})
	for _, bad := range [][]string{
		{"--op", "nope"},
		{"--op", "encrypt", "--baseline"},
		{"--op", "noop", "--baseline"},
		{"--op", "decrypt", "--size", "11m"},
		{"--op", "decrypt", "--cipher", "des"},
	} {
		if _, _, code := d.run(t, append([]string{"bench"}, bad...)...); code != 2 {
			t.Errorf("bench %v: exit %d, want 2", bad, code)
		}
	}
}
