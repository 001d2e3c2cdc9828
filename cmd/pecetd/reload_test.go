package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestReloadFindsOnlyPecetd: `pecetd reload` signals only a pecetd: a
// stale pid file naming another program, a dead pid and a dev folder
// without a running pecetd are errors (exit 1), and two sources are a
// usage error (exit 2). A pecetd that is running is e2e/TestReloadOnSIGHUP.
func TestReloadFindsOnlyPecetd(t *testing.T) {
	dir := t.TempDir()
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	stale := filepath.Join(dir, "stale.pid")
	if err := os.WriteFile(stale, []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pid")
	if err := os.WriteFile(garbage, []byte("pecetd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"stale pid file", []string{"--pid-file", stale}, 1, "not pecetd"},
		{"no such process", []string{"--pid", "999999999"}, 1, "not running"},
		{"pid file without a pid", []string{"--pid-file", garbage}, 1, "holds no process id"},
		{"no dev pecetd", []string{"--dev-dir", dir}, 1, "no running pecetd --dev"},
		{"two sources", []string{"--pid", "1", "--pid-file", stale}, 2, "at most one"},
		{"an argument", []string{"now"}, 2, "at most one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runReload(tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q lacks %q", code, tc.code, errb.String(), tc.want)
			}
		})
	}
}
