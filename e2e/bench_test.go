package e2e

import (
	"encoding/json"
	"testing"
)

// TestBench runs `pecet bench` briefly for each operation and checks that it
// measured something, without errors, and that --baseline gives a ratio.
// No rate is asserted: speed is reported, not tested.
func TestBench(t *testing.T) {
	d := startDev(t)
	for _, op := range []string{"sign", "sign-digest", "verify"} {
		t.Run(op, func(t *testing.T) {
			args := []string{"bench", "--op", op, "--duration", "500ms", "--warmup", "0s", "--concurrency", "2", "--connections", "2", "--json"}
			if op != "verify" {
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
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if r.Ops == 0 || r.Rate <= 0 || len(r.Errors) != 0 {
				t.Fatalf("result %+v", r)
			}
			if op != "verify" && (r.Ratio == nil || *r.Ratio <= 0) {
				t.Fatalf("no ratio: %s", out)
			}
		})
	}
	if _, _, code := d.run(t, "bench", "--op", "nope"); code != 2 {
		t.Errorf("unknown op: exit %d, want 2", code)
	}
}
