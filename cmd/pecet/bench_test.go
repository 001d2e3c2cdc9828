package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBaselineCeiling: the combined ceiling of a token and a no-op call in
// series is 1/(1/raw + 1/noop) (docs/performance.md, "Method"), and a
// --baseline report carries it beside the ratio to the raw rate.
func TestBaselineCeiling(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		rate, before, after      float64
		noop                     float64
		raw, ceil, ratio, cratio float64
	}{
		{"equal halves", 300, 1000, 1000, 1000, 1000, 500, 0.3, 0.6},
		{"token the limit", 450, 600, 400, 5000, 500, 1 / (1/500.0 + 1/5000.0), 0.9, 450 / (1 / (1/500.0 + 1/5000.0))},
		{"no-op the limit", 100, 4000, 4000, 400, 4000, 1 / (1/4000.0 + 1/400.0), 0.025, 100 / (1 / (1/4000.0 + 1/400.0))},
		{"nothing measured", 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := map[string]any{}
			addBaseline(out, tc.rate, tc.before, tc.after, tc.noop)
			b, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			var r map[string]float64
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			for field, want := range map[string]float64{
				"baseline_ops_per_s": tc.raw, "baseline_before_ops_per_s": tc.before, "baseline_after_ops_per_s": tc.after,
				"noop_ops_per_s": tc.noop, "ceiling_ops_per_s": tc.ceil, "ratio": tc.ratio, "ceiling_ratio": tc.cratio,
			} {
				got, ok := r[field]
				if !ok {
					t.Errorf("%s missing: %s", field, b)
					continue
				}
				if math.Abs(got-want) > 1e-9*math.Max(1, want) {
					t.Errorf("%s = %v, want %v", field, got, want)
				}
			}
			// The ceiling is below both rates it combines.
			if tc.raw > 0 && tc.noop > 0 && (r["ceiling_ops_per_s"] >= tc.raw || r["ceiling_ops_per_s"] >= tc.noop) {
				t.Errorf("ceiling %v not below raw %v and no-op %v", r["ceiling_ops_per_s"], tc.raw, tc.noop)
			}
		})
	}
}

// TestBenchBatchUsage: --batch with an op that takes no batch (neither a
// batch op nor seal) is a usage error, not silently ignored.
func TestBenchBatchUsage(t *testing.T) {
	for _, op := range []string{"sign", "decrypt", "timestamp"} {
		var code int
		out := capture(func() { code = runBench([]string{"--op", op, "--batch", "8", "--duration", "1ms"}) })
		if code != exitUsage {
			t.Errorf("--op %s --batch 8: exit %d, want %d (usage)\n%s", op, code, exitUsage, out)
		}
		if !strings.Contains(out, "--batch") {
			t.Errorf("--op %s --batch 8: message %q does not name --batch", op, out)
		}
	}
}

// TestBatchSizeUsage: --batch-size outside 1..1000 is a usage error naming
// the flag, before anything is read or dialled.
func TestBatchSizeUsage(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "list")
	if err := os.WriteFile(list, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		run  func([]string) int
		args []string
	}{
		{"sign 0", runSign, []string{"--key", "k", "--digest-file", list, "--out", dir, "--batch-size", "0"}},
		{"sign 1001", runSign, []string{"--key", "k", "--digest-file", list, "--out", dir, "--batch-size", "1001"}},
		{"timestamp 0", runTimestamp, []string{"--batch", list, "--out", dir, "--batch-size", "0"}},
		{"timestamp 1001", runTimestamp, []string{"--batch", list, "--out", dir, "--batch-size", "1001"}},
	} {
		var code int
		out := capture(func() { code = tt.run(tt.args) })
		if code != exitUsage || !strings.Contains(out, "--batch-size") {
			t.Errorf("%s: exit %d, output %q; want %d naming --batch-size", tt.name, code, out, exitUsage)
		}
	}
}
