package server

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestGoPool: every function runs exactly once, however many are handed
// over at once; a goroutine that finished is given the next function
// instead of a new one being started; idle goroutines end.
func TestGoPool(t *testing.T) {
	p := newGoPool(200 * time.Millisecond)

	// A burst: each of 500 functions runs once.
	var ran [500]atomic.Int32
	var wg sync.WaitGroup
	for i := range ran {
		wg.Add(1)
		p.Go(func() { ran[i].Add(1); wg.Done() })
	}
	wg.Wait()
	for i := range ran {
		if n := ran[i].Load(); n != 1 {
			t.Fatalf("function %d ran %d times", i, n)
		}
	}
	testtool.Eventually(t, 10*time.Second, func() bool { return p.waiting.Load() == 0 }, "idle goroutines end after the idle time")

	// One after the other, each handed over once the previous goroutine
	// waits for work: one goroutine runs them all.
	before := p.spawned.Load()
	for range 20 {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		testtool.Eventually(t, 10*time.Second, func() bool { return p.waiting.Load() == 1 }, "the goroutine waits for the next function")
	}
	if n := p.spawned.Load() - before; n != 1 {
		t.Errorf("20 functions one after the other started %d goroutines, want 1", n)
	}
}
