package main

import (
	"strings"
	"testing"
)

// TestVersionFlagRange: a key version is a uint32 in the API; a larger
// --version is a usage error before any call, never truncated to another
// version (4294967297 would otherwise become version 1).
func TestVersionFlagRange(t *testing.T) {
	dir := t.TempDir() // no pecetd here: a call that got through would fail otherwise
	digest := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"sign", []string{"--key", "k", "--digest", digest}},
		{"keys csr", []string{"--alias", "k", "--subject", "CN=x"}},
		{"keys disable", []string{"--alias", "k"}},
	} {
		for _, v := range []string{"4294967296", "4294967297", "-1", "x"} {
			t.Run(tc.name+"/"+v, func(t *testing.T) {
				args := append(strings.Fields(tc.name), append([]string{"--dev-dir", dir, "--version", v}, tc.args...)...)
				if code := runCommand(args); code != exitUsage {
					t.Errorf("--version %s: exit %d, want %d (usage)", v, code, exitUsage)
				}
			})
		}
	}
}
