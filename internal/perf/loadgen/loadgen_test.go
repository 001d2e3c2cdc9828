package loadgen

import (
	"context"
	"sync"
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

// startLog records when each call started, in order.
type startLog struct {
	mu sync.Mutex
	at []time.Time
}

func (l *startLog) add() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = append(l.at, time.Now())
	return int64(len(l.at))
}

// checkPaced checks what the open loop promises whatever the machine's
// load: the k-th call (from 0) starts no earlier than k intervals after
// Run was called (starts are due at fixed times and never early, skips
// only delay the next call), and no more starts (calls and skips) were
// dispatched than the rate allows over the run's elapsed time.
func checkPaced(t *testing.T, before time.Time, l *startLog, rate float64, r Result) {
	t.Helper()
	interval := time.Duration(float64(time.Second) / rate)
	for k, at := range l.at {
		if at.Before(before.Add(time.Duration(k) * interval)) {
			t.Errorf("call %d started %v after Run, before its due time %v", k, at.Sub(before), time.Duration(k)*interval)
		}
	}
	if starts, most := int64(len(l.at))+r.Skipped, int64(r.Elapsed.Seconds()*rate)+1; starts > most {
		t.Errorf("%d starts in %v at %v/s, at most %d allowed", starts, r.Elapsed, rate, most)
	}
}

func TestRunOpenLoop(t *testing.T) {
	var cut atomic.Int64
	var starts startLog
	before := time.Now()
	r := Run(context.Background(), Config{Concurrency: 4, Duration: 500 * time.Millisecond, Rate: 100}, func(ctx context.Context, w int) error {
		n := starts.add()
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
	// Counts and order, not the wall-clock rate (a loaded machine starts
	// late and skips; it never starts early or too many).
	checkPaced(t, before, &starts, 100, r)
	calls := int64(len(starts.at))
	if cut.Load() != 0 {
		t.Fatalf("%d calls saw their context cancelled", cut.Load())
	}
	if r.Ops+r.ErrorCount()+r.Wrong != calls {
		t.Fatalf("ops %d + errors %d + wrong %d != calls %d", r.Ops, r.ErrorCount(), r.Wrong, calls)
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
	var starts startLog
	before := time.Now()
	r := Run(context.Background(), Config{Concurrency: 1, Duration: 300 * time.Millisecond, Rate: 200}, func(ctx context.Context, w int) error {
		starts.add()
		time.Sleep(50 * time.Millisecond)
		return nil
	})
	// One worker of 50 ms: starts due while it is busy are skipped, not
	// queued (a queued start would run right after the previous call, and
	// nothing would be skipped).
	checkPaced(t, before, &starts, 200, r)
	if calls := int64(len(starts.at)); calls == 0 || r.Skipped == 0 || r.Ops != calls {
		t.Fatalf("%d calls, %d ops, %d skipped: want calls, and starts skipped while the worker was busy", calls, r.Ops, r.Skipped)
	}
}
