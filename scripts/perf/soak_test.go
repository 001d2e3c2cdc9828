package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSoakCmdRefuses: `perf soak` with bad flags or a fault schedule pecetd
// would refuse exits 2 (the soak could not run) at once, before it builds
// or starts anything (its work folder stays empty).
func TestSoakCmdRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"--nope"}},
		{"interval too short", []string{"--faults", "50ms"}},
		{"unknown fault kind", []string{"--faults", "3s:unplug"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "soak")
			if code := soakCmd(append(tc.args, "--dir", dir)); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the work folder was made: %v", err)
			}
		})
	}
}
