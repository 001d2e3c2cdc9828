package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// pollEvery is how often Eventually checks its condition: often enough that
// a test waits little past the moment the condition holds, rarely enough
// not to load a machine shared with other tests.
const pollEvery = 5 * time.Millisecond

// Eventually waits until cond holds, checking it every few milliseconds,
// and fails the test (with msg and args, if given) when it does not hold
// within timeout. The timeout is a bound for a stuck test, not the expected
// wait: give it room for a loaded machine. cond runs on the test's
// goroutine.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg ...any) {
	t.Helper()
	if !waitFor(timeout, cond) {
		what := "condition"
		if len(msg) > 0 {
			what = fmt.Sprint(msg[0])
			if f, ok := msg[0].(string); ok && len(msg) > 1 {
				what = fmt.Sprintf(f, msg[1:]...)
			}
		}
		t.Fatalf("%s: not true after %v", what, timeout)
	}
}

// waitFor is Eventually's loop: whether cond held within timeout.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return cond()
		}
		time.Sleep(pollEvery)
	}
	return true
}

// InCI reports whether the tests run in CI (CI set, and not "false" or
// "0"), where a missing tool must fail a test rather than skip it.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Require returns the path of the binary tool. Without it the test skips
// locally but fails in CI (InCI), where .ci/run installs every tool the
// tests use: a test that skips there would pass without running.
func Require(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if InCI() {
			t.Fatalf("%s is required in CI (.ci/run installs it): %v", tool, err)
			return ""
		}
		t.Skipf("%s not found; install it to run this test (CI fails without it)", tool)
	}
	return p
}
