package testtool

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// OpenSSL returns the path of the openssl binary. Without it the test skips,
// except in CI, where the interop tests must run.
func OpenSSL(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("openssl is required in CI: %v", err)
		}
		t.Skip("openssl binary not found; install openssl to run the interop tests")
	}
	return p
}

// RunOpenSSL runs openssl and returns its output (stdout and stderr
// together); an exit status other than 0 fails the test with that output.
func RunOpenSSL(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := TryOpenSSL(t, args...)
	if err != nil {
		t.Fatalf("openssl %v: %v\n%s", args, err, out)
	}
	return out
}

// TryOpenSSL runs openssl and returns its output (stdout and stderr
// together) and its error, for tests where openssl is expected to refuse.
func TryOpenSSL(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(OpenSSL(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}
