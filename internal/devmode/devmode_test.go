package devmode

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTighten: an existing dev folder made with loose modes is made
// private: the folder and tokens/ 0700, the token files, the PIN files and
// every *-key.pem 0600; certificates and the config keep their mode, and
// a symbolic link's target is not touched.
func TestTighten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	outside := filepath.Join(t.TempDir(), "elsewhere-key.pem")
	mk := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"pin", "so-pin", "ca-key.pem", "server-key.pem", "gateway-key.pem", "ca.pem", "pecet.yaml", "tokens/abc/token.object"} {
		mk(filepath.Join(dir, f), 0o644)
	}
	mk(outside, 0o644)
	if err := os.Symlink(outside, filepath.Join(dir, "link-key.pem")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "tokens"), filepath.Join(dir, "tokens/abc")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	if err := Tighten(dir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want os.FileMode
	}{
		{dir, 0o700},
		{filepath.Join(dir, "tokens"), 0o700},
		{filepath.Join(dir, "tokens/abc"), 0o700},
		{filepath.Join(dir, "tokens/abc/token.object"), 0o600},
		{filepath.Join(dir, "pin"), 0o600},
		{filepath.Join(dir, "so-pin"), 0o600},
		{filepath.Join(dir, "ca-key.pem"), 0o600},
		{filepath.Join(dir, "server-key.pem"), 0o600},
		{filepath.Join(dir, "gateway-key.pem"), 0o600},
		{filepath.Join(dir, "ca.pem"), 0o644},
		{filepath.Join(dir, "pecet.yaml"), 0o644},
		{outside, 0o644},
	} {
		st, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tc.want {
			t.Errorf("%s: mode %04o, want %04o", tc.path, got, tc.want)
		}
	}
}

// TestCheckListen: --dev listens on loopback only unless allowed.
func TestCheckListen(t *testing.T) {
	tests := []struct {
		grpc, http string
		allow      bool
		remote     int
		refused    bool
	}{
		{"127.0.0.1:7443", "127.0.0.1:7080", false, 0, false},
		{"localhost:0", "[::1]:0", false, 0, false},
		{"127.0.0.2:1", "[::ffff:127.0.0.1]:1", false, 0, false},
		{"0.0.0.0:7443", "127.0.0.1:7080", false, 1, true},
		{":7443", "127.0.0.1:7080", false, 1, true},
		{"127.0.0.1:7443", "[::]:7080", false, 1, true},
		{"192.168.1.10:7443", "10.0.0.1:7080", false, 2, true},
		{"pecet.example:7443", "127.0.0.1:7080", false, 1, true},
		{"not an address", "127.0.0.1:7080", false, 1, true},
		{"0.0.0.0:7443", "0.0.0.0:7080", true, 2, false},
	}
	for _, tc := range tests {
		remote, err := CheckListen(tc.grpc, tc.http, tc.allow)
		if len(remote) != tc.remote || (err != nil) != tc.refused {
			t.Errorf("%s %s allow=%v: remote %v, err %v", tc.grpc, tc.http, tc.allow, remote, err)
		}
		if err != nil && (!errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "--dev-allow-remote")) {
			t.Errorf("%s: error %q does not name --dev-allow-remote", tc.grpc, err)
		}
	}
}
