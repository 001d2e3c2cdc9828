package keystore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// pool hands out PKCS#11 sessions, each to one goroutine at a time (a
// session carries one active operation; two goroutines interleaving
// C_SignInit/C_Sign on it would corrupt both). At most cap(sem) sessions
// exist; they are opened lazily, so an idle Store holds only what it has
// needed so far.
type pool struct {
	p    p11
	slot uint

	sem     chan struct{} // one token per session handed out
	waiting atomic.Int64
	done    chan struct{} // closed by close: waiters give up at once

	mu     sync.Mutex
	idle   []pkcs11.SessionHandle // LIFO: the warmest session first
	closed bool
}

var errClosed = fmt.Errorf("%w: store closed", ErrTokenUnavailable)

func newPool(p p11, slot uint, size int) *pool {
	return &pool{p: p, slot: slot, sem: make(chan struct{}, size), done: make(chan struct{})}
}

// get returns a session for the caller's exclusive use until put. It waits
// for a free one as long as ctx allows.
func (p *pool) get(ctx context.Context) (pkcs11.SessionHandle, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("keystore: %w", err)
	}
	select {
	case <-p.done:
		return 0, errClosed
	default:
	}
	select {
	case p.sem <- struct{}{}:
	default:
		p.waiting.Add(1)
		select {
		case p.sem <- struct{}{}:
			p.waiting.Add(-1)
		case <-ctx.Done():
			p.waiting.Add(-1)
			return 0, fmt.Errorf("%w: %w", ErrPoolExhausted, ctx.Err())
		case <-p.done:
			p.waiting.Add(-1)
			return 0, errClosed
		}
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return 0, errClosed
	}
	if n := len(p.idle); n > 0 {
		sh := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return sh, nil
	}
	slot := p.slot
	p.mu.Unlock()

	// Read-write so that officer operations (key generation, metadata
	// updates) can use any pooled session.
	sh, err := p.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		<-p.sem
		return 0, p11Error("C_OpenSession", err)
	}
	return sh, nil
}

// put gives a session back. A session that failed is closed rather than
// reused: after an error its operation state is not known for certain, and
// PKCS#11 v2.40 has no call to reset it.
func (p *pool) put(sh pkcs11.SessionHandle, healthy bool) {
	p.mu.Lock()
	if healthy && !p.closed {
		p.idle = append(p.idle, sh)
		p.mu.Unlock()
	} else {
		p.mu.Unlock()
		_ = p.p.CloseSession(sh) // best effort: it may be gone already
	}
	<-p.sem
}

// purgeIdle closes every idle session. Used after one session was found
// lost: its siblings, opened on the same token, most likely are too.
func (p *pool) purgeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, sh := range idle {
		_ = p.p.CloseSession(sh)
	}
}

// stats reports sessions handed out and callers waiting for one.
func (p *pool) stats() (inUse, waiting int) {
	return len(p.sem), int(p.waiting.Load())
}

// shutdown refuses new callers and waits for every handed-out session to
// come back; the caller then closes or forgets the idle ones.
func (p *pool) shutdown() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	p.mu.Unlock()
	for range cap(p.sem) {
		p.sem <- struct{}{} // blocks until in-flight operations return theirs
	}
}

// forget drops the idle sessions without closing them: after the module was
// re-initialised their handles are void, and closing a number that now
// belongs to another session would close that one.
func (p *pool) forget() {
	p.mu.Lock()
	p.idle = nil
	p.mu.Unlock()
}

// setSlot points new sessions at the token's slot after it came back (slot
// ids change at every C_Initialize). The caller holds the module gate for
// writing, so no get is running.
func (p *pool) setSlot(slot uint) {
	p.mu.Lock()
	p.slot = slot
	p.mu.Unlock()
}

func (p *pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
