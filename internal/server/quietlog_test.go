package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/big"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/tsa"
)

// TestSuccessLogBuildsNothingAtInfo: a successful call's log line and a
// time-stamp's are Debug; at the default level (info) neither builds its
// fields (the per-call slice, the boxed values, the serial's hex), so the
// call path allocates nothing for them. Allocation counts, not time.
func TestSuccessLogBuildsNothingAtInfo(t *testing.T) {
	s := New(Deps{Log: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})), Metrics: metrics.New(nil)})
	ctx := context.Background()
	caller := &authz.Caller{Identity: "client", Roles: []string{"client"}}
	start := time.Now()
	method := pecetv1.SignService_Sign_FullMethodName
	s.callDone(ctx, method, caller, start, nil) // the metrics' label children exist from here on
	res := tsa.Result{Status: tsa.StatusGranted, Fail: tsa.FailNone, Info: &tsa.TSTInfo{Serial: new(big.Int).Lsh(big.NewInt(1), 150), GenTime: start}}
	s.observeTSA(ctx, "grpc", res)
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"call", func() { s.callDone(ctx, method, caller, start, nil) }},
		{"time-stamp", func() { s.observeTSA(ctx, "grpc", res) }},
	} {
		if n := testing.AllocsPerRun(100, c.f); n > 0 {
			t.Errorf("%s: %.0f allocations per successful call with debug off, want 0", c.name, n)
		}
	}
	// With debug on, both lines are written with their fields.
	var buf bytes.Buffer
	s = New(Deps{Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: metrics.New(nil)})
	s.callDone(ctx, method, caller, start, nil)
	s.observeTSA(ctx, "grpc", res)
	for _, want := range []string{`"msg":"call","method":"` + method + `","code":"OK","ms":`, `"caller":"client"`,
		`"msg":"time-stamp issued","transport":"grpc","serial":"` + res.Info.Serial.Text(16) + `"`} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("debug log lacks %s:\n%s", want, buf.String())
		}
	}
}
