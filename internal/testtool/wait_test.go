package testtool

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// tbRecorder is a testing.TB that records Fatalf and Skipf instead of
// stopping the test.
type tbRecorder struct {
	testing.TB
	fatal   string
	skipped bool
}

func (r *tbRecorder) Helper()                      {}
func (r *tbRecorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *tbRecorder) Skipf(string, ...any)         { r.skipped = true }

func TestEventually(t *testing.T) {
	start := time.Now()
	n := 0
	Eventually(t, 5*time.Second, func() bool { n++; return n >= 3 })
	if n != 3 {
		t.Errorf("cond ran %d times, want 3", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %v for a condition true at the third check", d)
	}
	r := &tbRecorder{TB: t}
	Eventually(r, 20*time.Millisecond, func() bool { return false }, "never %s", "true")
	if !strings.HasPrefix(r.fatal, "never true: ") {
		t.Errorf("a condition that never holds: %q, want a failure with the message", r.fatal)
	}
}

func TestRequire(t *testing.T) {
	for _, tc := range []struct {
		ci         string
		fail, skip bool
	}{
		{"", false, true},
		{"false", false, true},
		{"true", true, false},
		{"1", true, false},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &tbRecorder{TB: t}
			Require(r, "pecet-no-such-tool")
			if (r.fatal != "") != tc.fail || r.skipped != tc.skip {
				t.Errorf("failed %v, skipped %v; want %v, %v", r.fatal != "", r.skipped, tc.fail, tc.skip)
			}
		})
	}
	if p := Require(t, "go"); p == "" {
		t.Error("go: empty path")
	}
}
