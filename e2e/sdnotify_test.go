package e2e

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestSystemdNotify runs pecetd as systemd does for Type=notify
// (NOTIFY_SOCKET set): it must send READY=1 once it serves, not before, and
// STOPPING=1 when SIGTERM starts the drain. (e2e.TestSecondSignalForces
// covers the second signal.)
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	notified := func() string {
		t.Helper()
		buf := make([]byte, 512)
		_ = ln.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("no sd_notify message: %v", err)
		}
		return string(buf[:n])
	}
	d := startDevIn(t, filepath.Join(t.TempDir(), "dev"), "NOTIFY_SOCKET="+sock)
	if got := notified(); got != "READY=1" {
		t.Fatalf("first sd_notify message %q, want READY=1", got)
	}
	// READY=1 comes after the listeners accept: /readyz answers now.
	if code, body := d.get(t, "/readyz"); code != 200 {
		t.Fatalf("readyz after READY=1: %d %s", code, body)
	}
	d.stop(t)
	if got := notified(); got != "STOPPING=1" {
		t.Fatalf("sd_notify message on SIGTERM %q, want STOPPING=1", got)
	}
}
