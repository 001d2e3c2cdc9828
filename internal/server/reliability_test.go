package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/softhsm"
)

// faultyFixture is the fixture on a token reached through faultinject.Faults.
func faultyFixture(t *testing.T, deps func(*Deps)) (*fixture, *faultinject.Faults) {
	t.Helper()
	cfg := softhsm.NewTokenConfig(t)
	cfg.RetryInterval = 10 * time.Millisecond
	cfg.MaxSessions = 2
	f := &faultinject.Faults{}
	store, err := faultinject.Open(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newFixtureOpts(t, fixtureOpts{store: store, deps: deps}), f
}

func (f *fixture) httpGet(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.srv.HTTP().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func sign(ctx context.Context, cc *grpc.ClientConn) error {
	_, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("<PRIHL/>")}})
	return err
}

// TestTokenFaultsThroughServer: what a client and a monitor see while the
// token goes away and comes back: Unavailable and /readyz 503 meanwhile,
// /healthz 200 throughout, and service again without a restart.
func TestTokenFaultsThroughServer(t *testing.T) {
	fx, f := faultyFixture(t, nil)
	cc := fx.dial(t, "client")
	if err := sign(ctxT(t), cc); err != nil {
		t.Fatal(err)
	}
	if code, _ := fx.httpGet(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d before the fault", code)
	}
	f.RemoveToken()
	if err := sign(ctxT(t), cc); status.Code(err) != codes.Unavailable {
		t.Fatalf("Sign with the token removed = %v, want Unavailable", err)
	}
	if code, body := fx.httpGet(t, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "token unavailable") {
		t.Errorf("/readyz with the token removed = %d %q", code, body)
	}
	if code, _ := fx.httpGet(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d: liveness must not depend on the token", code)
	}
	f.InsertToken()
	testtool.Eventually(t, 10*time.Second, func() bool {
		code, _ := fx.httpGet(t, "/readyz")
		return code == http.StatusOK
	}, "/readyz ready after the token came back")
	if err := sign(ctxT(t), cc); err != nil {
		t.Fatalf("Sign after recovery: %v", err)
	}
}

// TestDeadlineAndCancelThroughServer: a slow token does not hold a call past
// its deadline (the server answers DeadlineExceeded by then, not when the
// token finishes), and a cancelled call gives its session back.
func TestDeadlineAndCancelThroughServer(t *testing.T) {
	fx, f := faultyFixture(t, nil)
	cc := fx.dial(t, "client")
	if err := sign(ctxT(t), cc); err != nil {
		t.Fatal(err)
	}
	const delay = time.Second
	f.SetDelay(delay)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := sign(ctx, cc); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Sign on a slow token = %v, want DeadlineExceeded", err)
	}
	// The server's handler returned (and was counted) before the token
	// answered. It sees DeadlineExceeded or, when the client's
	// cancellation arrives before its own timer fires, Canceled.
	counted := func() float64 {
		n := 0.0
		for _, code := range []codes.Code{codes.DeadlineExceeded, codes.Canceled} {
			var m dto.Metric
			if err := fx.srv.d.Metrics.Calls.WithLabelValues(pecetv1.SignService_Sign_FullMethodName, code.String()).Write(&m); err != nil {
				t.Fatal(err)
			}
			n += m.GetCounter().GetValue()
		}
		return n
	}
	testtool.Eventually(t, delay-time.Since(start), func() bool { return counted() > 0 }, "the server answering before the token did")

	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	signs := f.Signs.Load()
	go func() { errc <- sign(ctx, cc) }()
	testtool.Eventually(t, 10*time.Second, func() bool { return f.Signs.Load() != signs }, "the call reaching the token")
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled Sign = %v", err)
	}
	f.SetDelay(0)
	testtool.Eventually(t, 5*time.Second, func() bool {
		inUse, waiting := fx.store.PoolStats()
		return inUse == 0 && waiting == 0
	}, "the sessions of cancelled calls back in the pool")
	if err := sign(ctxT(t), cc); err != nil {
		t.Fatalf("Sign after the cancelled ones: %v", err)
	}
}

// TestRequiredKeysForReadiness: a token without a required key is not ready.
func TestRequiredKeysForReadiness(t *testing.T) {
	for _, tt := range []struct {
		keys []string
		code int
	}{
		{nil, http.StatusOK},
		{[]string{"client-sign", "gateway-decrypt"}, http.StatusOK},
		{[]string{"client-sign", "cssz-decrypt"}, http.StatusServiceUnavailable},
	} {
		fx := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.RequiredKeys = tt.keys }})
		if code, body := fx.httpGet(t, "/readyz"); code != tt.code {
			t.Errorf("required %v: /readyz = %d %q, want %d", tt.keys, code, body, tt.code)
		}
	}
}

// TestRateLimitPerClient: over its rate a client gets ResourceExhausted
// before any work; other identities are not affected.
func TestRateLimitPerClient(t *testing.T) {
	// A rate so low that nothing refills during the test: the burst is
	// what each identity gets.
	fx := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.Limiter = ratelimit.New(0.001, 3, nil) }})
	list := func(cc *grpc.ClientConn) error {
		_, err := pecetv1.NewKeyServiceClient(cc).ListKeys(ctxT(t), &pecetv1.ListKeysRequest{})
		return err
	}
	for _, who := range []string{"client", "gateway"} {
		cc := fx.dial(t, who)
		for i := range 3 {
			if err := list(cc); err != nil {
				t.Fatalf("%s call %d: %v", who, i+1, err)
			}
		}
		err := list(cc)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "rate limit") {
			t.Fatalf("%s call 4 = %v, want ResourceExhausted (rate limit)", who, err)
		}
	}
}

// TestCMSLimitsFromDeps: the configured CMS limits reach Verify.
func TestCMSLimitsFromDeps(t *testing.T) {
	fx := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.CMSLimits = signer.Limits{MaxCertificates: 1} }})
	cc := fx.dial(t, "client")
	sc := pecetv1.NewSignServiceClient(cc)
	data := []byte("<PRIHL/>")
	resp, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	// The signature carries the leaf and the CA: two certificates.
	_, err = sc.Verify(ctxT(t), &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Verify with cms_max_certificates 1 = %v, want ResourceExhausted", err)
	}
	if _, err := signer.ParseWithLimits(resp.GetSignature(), signer.Limits{MaxCertificates: 1}); !errors.Is(err, signer.ErrTooLarge) {
		t.Fatalf("ParseWithLimits = %v, want ErrTooLarge", err)
	}
}
