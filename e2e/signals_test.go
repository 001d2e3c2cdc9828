package e2e

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pecet-hsm/pecet/client"
)

// TestShutdownSignals runs pecetd as systemd would for Type=notify
// (NOTIFY_SOCKET set): it must send READY=1 once it serves and STOPPING=1
// when the first SIGTERM starts the drain. The drain waits for an open
// stream (for up to shutdown_grace, 20 s), and a second SIGTERM ends pecetd
// at once with status 1. One dev start serves both checks: it is the slow
// part (three RSA keys on SoftHSM).
func TestShutdownSignals(t *testing.T) {
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
	if code, _ := d.get(t, "/readyz"); code != 200 {
		t.Fatalf("readyz after READY=1: %d", code)
	}

	conn, err := client.Dial(client.Options{DevDir: d.dir, Server: d.grpc})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A health Watch is a stream that stays open: the drain waits for it as
	// it would for a slow HSM call.
	w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v %v", r, err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := notified(); got != "STOPPING=1" {
		t.Fatalf("sd_notify message on SIGTERM %q, want STOPPING=1", got)
	}
	// The drain marks the service NOT_SERVING first, then waits.
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch after SIGTERM: %v %v", r, err)
	}
	select {
	case err := <-d.done:
		t.Fatalf("pecetd exited while a stream was open, before the grace period: %v", err)
	case <-time.After(time.Second):
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		d.stopped = true
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("after a second SIGTERM: %v, want exit status 1", err)
		}
		if !strings.Contains(d.stderr.String(), "second signal") {
			t.Errorf("stderr does not say why:\n%s", d.stderr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pecetd still running 5 s after a second SIGTERM")
	}
}
