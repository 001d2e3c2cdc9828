package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devmode"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// syncBuffer is a log sink Run's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// messages returns the msg of each log line, in order.
func (s *syncBuffer) messages() []string {
	var out []string
	for _, line := range strings.Split(s.String(), "\n") {
		if i := strings.Index(line, ` msg="`); i >= 0 {
			m := line[i+len(` msg="`):]
			out = append(out, m[:strings.Index(m, `"`)])
		} else if i := strings.Index(line, ` msg=`); i >= 0 {
			out = append(out, strings.Fields(line[i+len(` msg=`):])[0])
		}
	}
	return out
}

// inOrder reports whether want appear in got in this order (others may
// come between).
func inOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// auditPhases returns the phase of each line of the audit log.
func auditPhases(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, `"phase":"`); i >= 0 {
			p := line[i+len(`"phase":"`):]
			out = append(out, p[:strings.Index(p, `"`)])
		}
	}
	return out
}

// TestRunLifecycle: pecetd --dev on a real SoftHSM token, in process.
// Whether start-up fails after the token is open (a bad server
// certificate), a listener cannot be opened, or pecetd serves and is
// stopped, the audit log gets its stop line and final checkpoint and the
// token is closed last; a served run logs the same lines in the same order and removes
// its endpoints and pid files (docs/operations.md "Start").
func TestRunLifecycle(t *testing.T) {
	testtool.Require(t, "softhsm2-util")
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.log")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name    string
		prepare func(t *testing.T)
		grpc    string
		wantErr string
		want    []string // log messages in this order
	}{
		{"a bad server certificate", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, "server.pem"), []byte("not a certificate"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "127.0.0.1:0", "server certificate", []string{"token open", "token closed"}},
		{"the gRPC address in use", func(t *testing.T) {
			// Prepare makes the server certificate again.
			_ = os.Remove(filepath.Join(dir, "server.pem"))
			_ = os.Remove(filepath.Join(dir, "server-key.pem"))
		}, busy.Addr().String(), "gRPC listener", []string{"token open", "token closed"}},
		{"served, then stopped", func(*testing.T) {}, "127.0.0.1:0", "",
			[]string{"token open", "pecetd serving", "shutting down: draining in-flight calls", "stopped", "token closed"}},
	}
	// The dev folder exists before the first case breaks it; Run
	// prepares it again and keeps what is there.
	if _, err := devmode.Prepare(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			pidFile := filepath.Join(dir, "pecetd.pid")
			before := len(auditPhasesIfAny(t, audit))
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{Dev: true, DevDir: dir, GRPCAddr: tc.grpc, HTTPAddr: "127.0.0.1:0", PIDFile: pidFile}, log)
			}()
			if tc.wantErr == "" {
				testtool.Eventually(t, time.Minute, func() bool { return inOrder(logs.messages(), []string{"pecetd serving"}) }, "pecetd does not serve:\n", &logs)
				for _, f := range []string{pidFile, filepath.Join(dir, AddrFile)} {
					if _, err := os.Stat(f); err != nil {
						t.Errorf("while serving: %v", err)
					}
				}
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("Run did not return; log:\n%s", logs.String())
			}
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Run: %v, want %q; log:\n%s", err, tc.wantErr, logs.String())
			}
			t.Logf("log messages: %q", logs.messages())
			if got := logs.messages(); !inOrder(got, tc.want) || got[len(got)-1] != "token closed" {
				t.Errorf("log messages %q, want %q in order and \"token closed\" last", got, tc.want)
			}
			// The audit log: this run's start and stop, then the final
			// checkpoint that signs them (made when the log closes).
			phases := auditPhases(t, audit)[before:]
			var startStop []string
			for _, p := range phases {
				if p == "start" || p == "stop" {
					startStop = append(startStop, p)
				}
			}
			if strings.Join(startStop, " ") != "start stop" || phases[len(phases)-1] != "checkpoint" {
				t.Errorf("audit phases of this run %q: want one start, one stop, the final checkpoint last", phases)
			}
			for _, f := range []string{pidFile, filepath.Join(dir, AddrFile)} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("after Run: %s: %v", filepath.Base(f), err)
				}
			}
		})
	}
}

// auditPhasesIfAny is auditPhases of a log that may not exist yet.
func auditPhasesIfAny(t *testing.T, file string) []string {
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	return auditPhases(t, file)
}
