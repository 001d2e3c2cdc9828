package server

import (
	"sync/atomic"
	"time"
)

// goPool runs functions on goroutines that are kept for the next one: a
// batch item's CMS encoding (cryptobyte's nested builders) grows a fresh
// goroutine's 8 KiB stack several times, and copying those stacks was a
// tenth of pecetd's CPU in a profile of SignDigests with P-256 (batches of
// 64 at four callers; docs/performance.md "Where a call's time goes"). A
// kept goroutine keeps its grown stack (until the GC shrinks an idle one).
// gRPC's own per-call goroutines are reused the same way
// (grpc.NumStreamWorkers in Server.GRPC).
//
// It bounds nothing: the callers bound how many functions run at once (a
// batch by its semaphore of token sessions). A goroutine idle for p.idle
// ends, so the pool shrinks back after a burst.
type goPool struct {
	work chan func()
	idle time.Duration
	// spawned and waiting count goroutines started and kept goroutines
	// waiting for work (for tests).
	spawned, waiting atomic.Int64
}

const goPoolIdle = 10 * time.Second

func newGoPool(idle time.Duration) *goPool { return &goPool{work: make(chan func()), idle: idle} }

// Go runs f on an idle kept goroutine, or on a new one that is then kept.
func (p *goPool) Go(f func()) {
	select {
	case p.work <- f:
	default:
		p.spawned.Add(1)
		go p.keep(f)
	}
}

func (p *goPool) keep(f func()) {
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		t.Reset(p.idle)
		p.waiting.Add(1)
		select {
		case f = <-p.work:
			p.waiting.Add(-1)
		case <-t.C:
			p.waiting.Add(-1)
			return
		}
	}
}
