package loadgen

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRunCountsAndErrors(t *testing.T) {
	var calls atomic.Int64
	r := Run(context.Background(), Config{Concurrency: 4, Duration: 200 * time.Millisecond}, func(ctx context.Context, w int) error {
		if w < 0 || w > 3 {
			t.Errorf("worker %d", w)
		}
		n := calls.Add(1)
		time.Sleep(time.Millisecond)
		if n%10 == 0 {
			return status.Error(codes.Unavailable, "x")
		}
		return nil
	})
	if r.Ops == 0 || r.Errors["Unavailable"] == 0 {
		t.Fatalf("result %+v", r)
	}
	// Every finished call is either an op or an error; at most one call per
	// worker is cut by the end of the phase.
	if got := r.Ops + r.ErrorCount(); got < calls.Load()-4 || got > calls.Load() {
		t.Fatalf("ops+errors %d, calls %d", got, calls.Load())
	}
	if !(r.P50 >= time.Millisecond && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Fatalf("percentiles out of order: %+v", r)
	}
	if r.Rate() <= 0 {
		t.Fatal("rate")
	}
}

func TestRunStopsOnContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	Run(ctx, Config{Concurrency: 2, Duration: time.Hour}, func(ctx context.Context, _ int) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if time.Since(start) > 5*time.Second {
		t.Fatal("did not stop with its context")
	}
}

func TestRunOpenLoop(t *testing.T) {
	var calls, cut atomic.Int64
	r := Run(context.Background(), Config{Concurrency: 4, Duration: 500 * time.Millisecond, Rate: 100}, func(ctx context.Context, w int) error {
		n := calls.Add(1)
		time.Sleep(20 * time.Millisecond)
		if ctx.Err() != nil {
			cut.Add(1) // the end of the phase must not cancel a call
		}
		switch n % 10 {
		case 3:
			return Wrong("answer %d", n)
		case 7:
			return status.Error(codes.Unavailable, "x")
		case 8:
			return &Refused{Code: "systemFailure", Msg: "no token"}
		}
		return nil
	})
	// 100/s for 0.5 s is about 50 starts; 4 workers of 20 ms take up to
	// 200/s, so none is skipped on an idle machine, and a loaded one
	// skips some but never starts more than the rate allows.
	if got := calls.Load(); got > 52 || got+r.Skipped < 45 {
		t.Fatalf("%d calls, %d skipped at 100/s for 0.5s", got, r.Skipped)
	}
	if cut.Load() != 0 {
		t.Fatalf("%d calls saw their context cancelled", cut.Load())
	}
	if r.Ops+r.ErrorCount()+r.Wrong != calls.Load() {
		t.Fatalf("ops %d + errors %d + wrong %d != calls %d", r.Ops, r.ErrorCount(), r.Wrong, calls.Load())
	}
	if r.Wrong == 0 || r.Errors["Unavailable"] == 0 || r.Errors["systemFailure"] == 0 || r.Errors["Unknown"] != 0 {
		t.Fatalf("result %+v", r)
	}
	var bySecond int64
	for _, n := range r.ErrorsBySecond {
		bySecond += n
	}
	if bySecond != r.ErrorCount() {
		t.Fatalf("errors by second %v, errors %d", r.ErrorsBySecond, r.ErrorCount())
	}
}

func TestRunOpenLoopSkipsWhenBusy(t *testing.T) {
	var calls atomic.Int64
	r := Run(context.Background(), Config{Concurrency: 1, Duration: 300 * time.Millisecond, Rate: 200}, func(ctx context.Context, w int) error {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond)
		return nil
	})
	// One worker of 50 ms manages at most 7 of the 60 starts.
	if calls.Load() > 8 || r.Skipped < 40 {
		t.Fatalf("%d calls, %d skipped", calls.Load(), r.Skipped)
	}
}
