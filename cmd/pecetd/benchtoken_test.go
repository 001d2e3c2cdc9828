package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchTokenRefusesBadUse: pecetd bench-token answers a usage error
// with exit 2 before it opens any token, and a token it cannot open with
// exit 1 and the reason. e2e TestBench runs it for real through pecet
// bench --baseline.
func TestBenchTokenRefusesBadUse(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  int
		want  string
	}{
		{"no key", []string{"--purpose", "SIGN"}, "", 2, "--key and --purpose"},
		{"no purpose", []string{"--key", "k"}, "", 2, "--key and --purpose"},
		{"audit purpose", []string{"--key", "k", "--purpose", "AUDIT"}, "", 2, "--key and --purpose"},
		{"an argument", []string{"--key", "k", "--purpose", "SIGN", "x"}, "", 2, "--key and --purpose"},
		{"no config", []string{"--key", "k", "--purpose", "sign", "--config", missing}, "1s\n", 1, "none.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			code := runBenchToken(tc.args, strings.NewReader(tc.stdin), &out, &errs)
			if code != tc.code || !strings.Contains(errs.String(), tc.want) || out.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out.String(), errs.String(), tc.code, tc.want)
			}
		})
	}
}
