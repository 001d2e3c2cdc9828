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
