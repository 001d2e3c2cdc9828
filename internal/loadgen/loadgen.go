// Package loadgen runs a bounded closed-loop load: a fixed number of
// workers call one operation back to back for a fixed duration, and the
// result reports throughput, latency percentiles and errors by gRPC code.
// It is the engine of `pecet bench`; it knows nothing of pecet's API.
package loadgen

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"
)

// Op is one call; worker is the worker's index (to pick a connection).
type Op func(ctx context.Context, worker int) error

// Config bounds a run.
type Config struct {
	Concurrency int
	Duration    time.Duration
	// Warmup runs the load this long before measuring (connections, caches).
	Warmup time.Duration
	// Progress, when set, is called about once a second with the running
	// totals of the measured phase.
	Progress func(elapsed time.Duration, ops, errs int64)
}

// Result is what a run measured.
type Result struct {
	Ops      int64
	Errors   map[string]int64 // by gRPC code name
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
		runPhase(wctx, cfg.Concurrency, op, nil, nil)
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
	lat, errByCode := runPhase(mctx, cfg.Concurrency, op, &ops, &errs)
	elapsed := time.Since(start)
	close(stopProgress)
	pwg.Wait()
	r := Result{Ops: ops.Load(), Errors: errByCode, Elapsed: elapsed}
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	}
	return r
}

// runPhase runs the workers until ctx ends and returns the latencies of the
// successful calls and the errors by code. A call cut short by the end of
// the phase itself is neither counted nor an error.
func runPhase(ctx context.Context, n int, op Op, ops, errs *atomic.Int64) ([]time.Duration, map[string]int64) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		all    []time.Duration
		byCode = map[string]int64{}
	)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1024)
			codes := map[string]int64{}
			for !over(ctx) {
				t0 := time.Now()
				err := op(ctx, w)
				d := time.Since(t0)
				if err != nil {
					if over(ctx) {
						break
					}
					codes[status.Code(err).String()]++
					if errs != nil {
						errs.Add(1)
					}
					continue
				}
				lat = append(lat, d)
				if ops != nil {
					ops.Add(1)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			for c, k := range codes {
				byCode[c] += k
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, byCode
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
