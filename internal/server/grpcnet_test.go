package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestStreamIdleTimeout: an EncryptStream or DecryptStream that receives
// nothing for grpc.stream_idle_timeout is ended with DeadlineExceeded and
// a message naming the setting, long before the client's own deadline:
// before, it held its HTTP/2 stream, goroutine and (after the first
// request) its token key lookup for as long as the client liked.
func TestStreamIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.GRPC.StreamIdleTimeout = idle }})
	enc := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	gw := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway"))
	for _, c := range []struct {
		name string
		open func(ctx context.Context) (recv func() error, err error)
	}{
		{"EncryptStream, nothing sent", func(ctx context.Context) (func() error, error) {
			st, err := enc.EncryptStream(ctx)
			return func() error { _, err := st.Recv(); return err }, err
		}},
		{"EncryptStream, parameters then nothing", func(ctx context.Context) (func() error, error) {
			st, err := enc.EncryptStream(ctx)
			if err == nil {
				err = st.Send(&pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}, Data: []byte("x")})
			}
			return func() error { _, err := st.Recv(); return err }, err
		}},
		{"DecryptStream, first request then nothing", func(ctx context.Context) (func() error, error) {
			st, err := gw.DecryptStream(ctx)
			if err == nil {
				err = st.Send(&pecetv1.DecryptStreamRequest{Enveloped: []byte{0x30, 0x80}})
			}
			return func() error { _, err := st.Recv(); return err }, err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			recv, err := c.open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for err == nil {
				err = recv()
			}
			took := time.Since(start)
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), "stream_idle_timeout") {
				t.Fatalf("after %v: %v, want DeadlineExceeded naming grpc.stream_idle_timeout", took, err)
			}
			if took < idle || took > 5*time.Second {
				t.Fatalf("ended after %v, want about %v", took, idle)
			}
		})
	}
	// The DecryptStream that had begun is audited with its outcome.
	var ends int
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC == methodDecryptStream && e.Phase == audit.PhaseEnd && e.Code == codes.DeadlineExceeded.String() {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("%d DecryptStream end lines with DeadlineExceeded, want 1", ends)
	}
}

// TestStreamIdleTimeoutCountsProgress: a stream that keeps sending, each
// piece well within the idle timeout, is not cut however long it runs.
func TestStreamIdleTimeoutCountsProgress(t *testing.T) {
	// A margin of six between the gaps and the timeout: at 300 ms and
	// gaps of 100 ms a loaded machine (race detector, load 7) once
	// stalled a gap past the timeout.
	const idle = time.Second
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.GRPC.StreamIdleTimeout = idle }})
	ctx := ctxT(t)
	st, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client")).EncryptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		req := &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}
		for range 12 { // 12 gaps of idle/6: twice the idle timeout in all
			req.Data = []byte("0123456789")
			if st.Send(req) != nil {
				return
			}
			req = &pecetv1.EncryptStreamRequest{}
			time.Sleep(idle / 6)
		}
		_ = st.CloseSend()
	}()
	for {
		_, err := st.Recv()
		if err != nil {
			if status.Code(err) != codes.OK && err.Error() != "EOF" {
				t.Fatalf("a busy stream was ended: %v", err)
			}
			return
		}
	}
}

// TestGRPCMaxConcurrentStreams: one connection carries at most
// grpc.max_concurrent_streams calls at once; the next waits for one to end.
func TestGRPCMaxConcurrentStreams(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.GRPC.MaxConcurrentStreams = 2 }})
	ec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	ctx := ctxT(t)
	var cancels []context.CancelFunc
	for range 2 {
		sctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		if _, err := ec.EncryptStream(sctx); err != nil {
			t.Fatal(err)
		}
	}
	// The client knows the server's SETTINGS (the limit) already: grpc-go
	// reports a connection ready only after the server's preface, and the
	// streams above needed a ready connection.
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	// A bad first request is answered InvalidArgument at once by a stream
	// the server has taken; a stream over the limit never gets that far.
	bad := &pecetv1.EncryptStreamRequest{Cipher: 99, Data: []byte("x")}
	st, err := ec.EncryptStream(short)
	if err == nil {
		_ = st.Send(bad)
		_, err = st.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a third stream on the connection: %v, want it to wait (DeadlineExceeded)", err)
	}
	cancels[0]()
	third, cancel3 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel3()
	st, err = ec.EncryptStream(third)
	if err == nil {
		_ = st.Send(bad)
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("after one ended, a new stream: %v, want the server's InvalidArgument", err)
	}
	cancels[1]()
}

// TestGRPCMaxConnectionIdle: the server closes a connection that has had
// no call for grpc.keepalive.max_connection_idle (the client reconnects
// on its next call).
func TestGRPCMaxConnectionIdle(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.GRPC.Keepalive.MaxConnectionIdle = 300 * time.Millisecond }})
	cc := f.dial(t, "client")
	hc := healthpb.NewHealthClient(cc)
	if _, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	testtool.Eventually(t, 5*time.Second, func() bool { return cc.GetState() != connectivity.Ready }, "the idle connection closed")
	if _, err := hc.Check(ctxT(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("the call after the idle close: %v", err)
	}
}

// TestRateLimitBeforeAudit: the per-identity rate limit is checked before
// any audit line is written, for denied callers too (a certificate from
// the client CA that no client entry names, or a role calling what it may
// not): before, each denied call wrote its "denied" line unlimited.
func TestRateLimitBeforeAudit(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.Limiter = ratelimit.NewBounded(0.01, 2, 100, nil) }})
	ctx := ctxT(t)
	req := &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}
	for _, c := range []struct {
		identity string
		first    codes.Code // for the burst of 2; the rest ResourceExhausted
		phase    string
	}{
		{"stranger", codes.PermissionDenied, audit.PhaseDenied},
		{"gateway", codes.PermissionDenied, audit.PhaseDenied}, // configured, but not for Sign
		{"client", codes.OK, audit.PhaseBegin},
	} {
		t.Run(c.identity, func(t *testing.T) {
			sc := pecetv1.NewSignServiceClient(f.dial(t, c.identity))
			for i := range 10 {
				_, err := sc.Sign(ctx, req)
				want := c.first
				if i >= 2 {
					want = codes.ResourceExhausted
				}
				if status.Code(err) != want {
					t.Fatalf("call %d: %v, want %v", i, err, want)
				}
			}
			n := 0
			for _, e := range auditEvents(t, f.auditFile) {
				if e.Caller == c.identity && e.Phase == c.phase {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d %s lines for 2 calls within the rate and 8 over it", n, c.phase)
			}
		})
	}
}
