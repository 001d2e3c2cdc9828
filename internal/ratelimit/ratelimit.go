// Package ratelimit keeps one token bucket per client identity, so that one
// client (a runaway gateway, a stolen certificate, one address hammering the
// unauthenticated POST /tsa) cannot take the HSM's whole signing rate, or
// the audit log's disk, from the others. A request over the rate is refused
// before any work and before any audit line with ErrLimited
// (ResourceExhausted on the wire, 429 over HTTP). A batch of n items takes
// n tokens at once (AllowN; docs/security.md "Batch calls and the rate
// limit").
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ErrLimited: the client made more requests than its rate allows.
var ErrLimited = errors.New("ratelimit: request rate limit exceeded")

// ErrExceedsBurst: one request asked for more tokens than the bucket can
// ever hold (AllowN with n above the burst); waiting does not help.
var ErrExceedsBurst = errors.New("ratelimit: request larger than the burst")

// Overflow is the identity whose bucket all new identities share while the
// table is full of active ones (Limiter with a maximum).
const Overflow = "\x00overflow"

// Limiter is a token bucket per identity. The zero rate allows everything.
//
// The table of buckets is bounded when a maximum is given (NewBounded): the
// identities of callers the server has not authorised (a denied
// certificate, an HTTP client's address) are chosen by the caller, and each
// would otherwise cost a map entry for ever. A bucket that has refilled to
// its burst is the same as no bucket, so such buckets are swept out when
// the table is full; while it stays full of active identities, new ones
// share the bucket Overflow: they are limited together rather than let in
// unlimited or let to grow the table.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int // 0: no bound (the configured identities only)
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter of rate requests per second per identity with room
// for burst at once; burst ≤ 0 means the rate rounded up, at least 1. now is
// the clock (nil: time.Now). Its table is not bounded: use it only for
// identities the server has authorised (the configured clients).
func New(rate float64, burst int, now func() time.Time) *Limiter {
	return NewBounded(rate, burst, 0, now)
}

// NewBounded is New with at most maxIdentities buckets (≤ 0: no bound),
// plus the shared Overflow bucket.
func NewBounded(rate float64, burst, maxIdentities int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	b := float64(burst)
	if burst <= 0 {
		b = max(1, math.Ceil(rate))
	}
	return &Limiter{rate: rate, burst: b, max: max(0, maxIdentities), now: now, buckets: map[string]*bucket{}}
}

// Len is the number of buckets held (for tests and metrics).
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Burst is the bucket's size: the most tokens one AllowN can take; 0
// when there is no limit.
func (l *Limiter) Burst() int {
	if l == nil || l.rate <= 0 {
		return 0
	}
	return int(l.burst)
}

// Allow takes one token from identity's bucket, or returns ErrLimited.
func (l *Limiter) Allow(identity string) error { return l.AllowN(identity, 1) }

// AllowN takes n tokens from identity's bucket at once (a batch of n
// items), or none: ErrLimited when the bucket holds fewer now, and
// ErrExceedsBurst when n is above the burst, which no wait would fill.
// n ≤ 0 takes nothing.
func (l *Limiter) AllowN(identity string, n int) error {
	if l == nil || l.rate <= 0 || n <= 0 {
		return nil
	}
	if float64(n) > l.burst {
		return fmt.Errorf("%w: %d at once, burst %d", ErrExceedsBurst, n, int(l.burst))
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[identity]
	if b == nil {
		if l.max > 0 && len(l.buckets) >= l.max {
			l.sweep(now)
			if len(l.buckets) >= l.max {
				identity = Overflow
				b = l.buckets[identity]
			}
		}
		if b == nil {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[identity] = b
		}
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < float64(n) {
		return ErrLimited
	}
	b.tokens -= float64(n)
	return nil
}

// sweep drops the buckets that have refilled to the burst. It runs at most
// once per refill period, so a full table of active identities costs one
// pass over it per period, not one per request.
func (l *Limiter) sweep(now time.Time) {
	period := time.Duration(l.burst / l.rate * float64(time.Second))
	if !l.lastSweep.IsZero() && now.Sub(l.lastSweep) < min(period, time.Second) {
		return
	}
	l.lastSweep = now
	for id, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, id)
		}
	}
}

// AddrKey is the rate-limit identity of a network peer ("host:port" or a
// bare address): the IPv4 address, or the /64 prefix of an IPv6 address,
// since one IPv6 host usually holds a whole /64 and could otherwise take a
// fresh bucket per request. An address that does not parse is its own key.
func AddrKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
