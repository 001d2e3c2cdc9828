// Package ratelimit keeps one token bucket per client identity, so that one
// client (a runaway gateway, a stolen certificate) cannot take the HSM's
// whole signing rate from the others. A request over the rate is refused
// before any work with ErrLimited (ResourceExhausted on the wire).
package ratelimit

import (
	"errors"
	"math"
	"sync"
	"time"
)

// ErrLimited: the client made more requests than its rate allows.
var ErrLimited = errors.New("ratelimit: request rate limit exceeded")

// Limiter is a token bucket per identity. The zero rate allows everything.
// Identities are the configured clients' (the server limits only callers it
// has authorised), so the map stays as small as the config.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter of rate requests per second per identity with room
// for burst at once; burst ≤ 0 means the rate rounded up, at least 1. now is
// the clock (nil: time.Now).
func New(rate float64, burst int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	b := float64(burst)
	if burst <= 0 {
		b = max(1, math.Ceil(rate))
	}
	return &Limiter{rate: rate, burst: b, now: now, buckets: map[string]*bucket{}}
}

// Allow takes one token from identity's bucket, or returns ErrLimited.
func (l *Limiter) Allow(identity string) error {
	if l == nil || l.rate <= 0 {
		return nil
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[identity]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[identity] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return ErrLimited
	}
	b.tokens--
	return nil
}
