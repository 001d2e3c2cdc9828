package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 256)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotify(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify.sock"),
		"@pecet-sdnotify-test-" + time.Now().Format("150405.000000000"),
	} {
		t.Run(name[:1], func(t *testing.T) {
			c := listen(t, name)
			t.Setenv("NOTIFY_SOCKET", name)
			for _, st := range []string{Ready, Stopping} {
				sent, err := Notify(st)
				if !sent || err != nil {
					t.Fatalf("Notify(%s) = %v, %v", st, sent, err)
				}
				if got := read(t, c); got != st {
					t.Fatalf("received %q, want %q", got, st)
				}
			}
		})
	}
}

func TestNotifyOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("Notify without NOTIFY_SOCKET = %v, %v; want false, nil", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if sent, err := Notify(Ready); sent || err == nil {
		t.Fatalf("Notify to a missing socket = %v, %v; want an error", sent, err)
	}
}
