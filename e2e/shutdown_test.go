package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

func dialDev(t *testing.T, d *daemon, role string) *client.Conn {
	t.Helper()
	c, err := client.Dial(client.Options{DevDir: d.dir, Server: d.grpc, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestShutdownDrainsCalls: SIGTERM while clients sign: every call either
// completes with a signature or is refused as Unavailable (never lost or
// Internal), the token is closed and pecetd exits 0.
func TestShutdownDrainsCalls(t *testing.T) {
	d := startDev(t)
	c := dialDev(t, d, "client")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, gone int
		started  = make(chan struct{})
		once     sync.Once
	)
	for range 4 {
		wg.Go(func() {
			for {
				resp, err := c.Sign.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("<PRIHL/>")}})
				once.Do(func() { close(started) })
				mu.Lock()
				switch {
				case err == nil && len(resp.GetSignature()) > 0:
					ok++
				case status.Code(err) == codes.Unavailable:
					gone++
				default:
					t.Errorf("Sign during shutdown = %v", err)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	<-started
	// Some signatures have come back before the signal (a condition, not a
	// fixed sleep: a loaded machine signs slower).
	testtool.Eventually(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ok >= 8
	}, "8 signatures before SIGTERM")
	d.stop(t) // SIGTERM, exit 0, no secrets
	wg.Wait()
	if ok == 0 || gone != 4 {
		t.Errorf("%d signatures, %d refused: want some signatures, then each client refused once", ok, gone)
	}
	log := d.stderr.String()
	for _, want := range []string{"shutting down", "token closed", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// TestSecondSignalForces: a stream the client never finishes (an
// EncryptStream waiting for more input) holds the graceful stop; after
// SIGTERM pecetd reports NOT_SERVING and ends health Watch streams (they must
// not hold the drain), refuses new connections, and a second SIGTERM ends
// it at once with status 1.
func TestSecondSignalForces(t *testing.T) {
	d := startDev(t)
	c := dialDev(t, d, "client")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := healthpb.NewHealthClient(c.ClientConn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v %v", r, err)
	}
	es, err := c.Envelope.EncryptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := es.Send(&pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}, Data: []byte("half a filing")}); err != nil {
		t.Fatal(err)
	}
	// HTTP/2 frames arrive in order on one connection: once a later call on
	// it has been answered, pecetd has opened the stream.
	if _, err := c.Keys.ListKeys(ctx, &pecetv1.ListKeysRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after SIGTERM: %v %v, want NOT_SERVING", r, err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Watch during the drain: %v, want it ended with Unavailable", err)
	}
	// Not accepting: a new connection's call fails.
	c2 := dialDev(t, d, "client")
	short, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if _, err := c2.Keys.ListKeys(short, &pecetv1.ListKeysRequest{}); err == nil {
		t.Error("a new connection was served during the drain")
	}
	// Draining all this while: the open stream holds pecetd until its grace
	// period (checked after the refused connection, not after a sleep).
	select {
	case err := <-d.done:
		t.Fatalf("pecetd exited (%v) with a stream open, before its grace period", err)
	default:
	}

	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.stopped = true
	select {
	case err := <-d.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("after the second SIGTERM: %v, want exit status 1", err)
		}
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Fatal("the second SIGTERM did not end pecetd")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("forced exit took %v", took)
	}
	if !strings.Contains(d.stderr.String(), "second signal") {
		t.Error("the log does not say why pecetd exited")
	}
	d.checkNoSecrets(t)
}
