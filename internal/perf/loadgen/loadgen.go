// Package loadgen runs a bounded load: a fixed number of workers call one
// operation back to back (closed loop) or at a target rate (open loop) for
// a fixed duration, and the result reports throughput, latency
// percentiles, errors by gRPC code and by second, and wrong answers. It is
// the engine of `pecet bench`; it knows nothing of pecet's API.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
)

// Op is one call; worker is the worker's index (to pick a connection).
// An error that wraps ErrWrong is a wrong answer, not a failed call.
type Op func(ctx context.Context, worker int) error

// ErrWrong marks an answer that arrived but was wrong (a signature that
// does not verify over the data sent, a decryption that returns other
// bytes): counted apart from errors, since no fault excuses it.
var ErrWrong = errors.New("wrong answer")

// Refused is an answer that refuses the call in its protocol's own terms
// rather than with a gRPC status: an RFC 3161 response with status
// REJECTION and failInfo systemFailure, which is how a TSA says that it
// cannot issue a token now. It counts as an error under Code.
type Refused struct{ Code, Msg string }

func (r *Refused) Error() string { return r.Code + ": " + r.Msg }

// Code is the name an error is counted under: a Refused's code, else the
// gRPC status code's name (Unknown for an error without one).
func Code(err error) string {
	if r := (*Refused)(nil); errors.As(err, &r) {
		return r.Code
	}
	return status.Code(err).String()
}

// Wrong returns an error wrapping ErrWrong.
func Wrong(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrWrong, fmt.Sprintf(format, a...))
}

// Config bounds a run.
type Config struct {
	Concurrency int
	Duration    time.Duration
	// Warmup runs the load this long before measuring (connections, caches).
	Warmup time.Duration
	// Rate, when positive, makes the load open-loop: calls start at this
	// many per second whatever the answers take, on at most Concurrency
	// workers at once; a start that finds every worker busy is skipped
	// (Result.Skipped). Calls in flight when the duration ends are waited
	// for, not cancelled, so every call started gets its answer.
	Rate float64
	// Progress, when set, is called about once a second with the running
	// totals of the measured phase.
	Progress func(elapsed time.Duration, ops, errs int64)
}

// Result is what a run measured.
type Result struct {
	Ops    int64
	Errors map[string]int64 // by gRPC code name
	// ErrorsBySecond counts failed calls by the second of the measured
	// phase they ended in (0 is the first), to set beside fault windows.
	ErrorsBySecond map[int]int64
	// Wrong counts answers that wrap ErrWrong.
	Wrong int64
	// Skipped counts open-loop starts that found every worker busy.
	Skipped  int64
	Elapsed  time.Duration
	P50, P90 time.Duration
	P99, Max time.Duration
}

// Rate is successful operations per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// ErrorCount is the number of failed calls.
func (r Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Run drives op with cfg.Concurrency workers. It stops at cfg.Duration or
// when ctx ends, whichever is first.
func Run(ctx context.Context, cfg Config, op Op) Result {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
		runPhase(wctx, cfg, op, nil, nil, time.Now())
		cancel()
	}
	mctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var ops, errs atomic.Int64
	stopProgress := make(chan struct{})
	start := time.Now()
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					cfg.Progress(time.Since(start), ops.Load(), errs.Load())
				case <-stopProgress:
					return
				}
			}
		}()
	}
	ph := runPhase(mctx, cfg, op, &ops, &errs, start)
	elapsed := time.Since(start)
	close(stopProgress)
	pwg.Wait()
	r := Result{Ops: ops.Load(), Errors: ph.byCode, ErrorsBySecond: ph.bySecond, Wrong: ph.wrong, Skipped: ph.skipped, Elapsed: elapsed}
	lat := ph.lat
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	}
	return r
}

type phase struct {
	lat      []time.Duration
	byCode   map[string]int64
	bySecond map[int]int64
	wrong    int64
	skipped  int64
}

// runPhase runs the workers until ctx ends and returns the latencies of the
// successful calls, the errors by code and second and the wrong answers.
// In the closed loop a call cut short by the end of the phase itself is
// neither counted nor an error; in the open loop (cfg.Rate) calls run on a
// context the phase's end does not cancel.
func runPhase(ctx context.Context, cfg Config, op Op, ops, errs *atomic.Int64, start time.Time) phase {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ph = phase{byCode: map[string]int64{}, bySecond: map[int]int64{}}
	)
	var ticks chan struct{}
	callCtx := ctx
	if cfg.Rate > 0 {
		ticks = make(chan struct{})
		callCtx = context.WithoutCancel(ctx)
	}
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			codes := map[string]int64{}
			seconds := map[int]int64{}
			var wrong int64
			for {
				if ticks != nil {
					if _, ok := <-ticks; !ok {
						break
					}
				} else if over(ctx) {
					break
				}
				t0 := time.Now()
				err := op(callCtx, w)
				d := time.Since(t0)
				switch {
				case err == nil:
					lat = append(lat, d)
					if ops != nil {
						ops.Add(1)
					}
				case ticks == nil && over(ctx):
				case errors.Is(err, ErrWrong):
					wrong++
				default:
					codes[Code(err)]++
					seconds[int(time.Since(start)/time.Second)]++
					if errs != nil {
						errs.Add(1)
					}
				}
			}
			mu.Lock()
			ph.lat = append(ph.lat, lat...)
			for c, k := range codes {
				ph.byCode[c] += k
			}
			for s, k := range seconds {
				ph.bySecond[s] += k
			}
			ph.wrong += wrong
			mu.Unlock()
		}()
	}
	if ticks != nil {
		ph.skipped = dispatch(ctx, cfg.Rate, ticks)
		close(ticks)
	}
	wg.Wait()
	return ph
}

// dispatch hands out starts at rate per second until ctx ends; a start no
// idle worker takes is skipped and counted. Starts are due at fixed times
// from the beginning, so a late tick does not lower the rate.
func dispatch(ctx context.Context, rate float64, ticks chan<- struct{}) (skipped int64) {
	interval := time.Duration(float64(time.Second) / rate)
	t0 := time.Now()
	for n := int64(0); ; n++ {
		due := t0.Add(time.Duration(n) * interval)
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return skipped
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return skipped
		}
		select {
		case ticks <- struct{}{}:
		default:
			skipped++
		}
	}
}

// over reports whether the phase has ended. The deadline is compared too:
// gRPC fails a call at the deadline a moment before ctx.Err() is set, and
// such a call is the phase ending, not an error.
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
