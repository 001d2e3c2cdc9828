package ratelimit

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func allowed(l *Limiter, id string, n int) int {
	ok := 0
	for range n {
		if l.Allow(id) == nil {
			ok++
		}
	}
	return ok
}

func TestLimiter(t *testing.T) {
	tests := []struct {
		name      string
		rate      float64
		burst     int
		first     int           // allowed of 100 at once
		wait      time.Duration // then
		afterWait int           // allowed of 100 after the wait
	}{
		{"off", 0, 0, 100, 0, 100},
		{"burst", 10, 5, 5, time.Second, 5}, // refills to the burst, no more
		{"rate refill", 10, 20, 20, 500 * time.Millisecond, 5},
		{"default burst", 2.5, 0, 3, 2 * time.Second, 3},
		{"slow", 0.5, 1, 1, time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{t: time.Unix(1e9, 0)}
			l := New(tt.rate, tt.burst, c.now)
			if got := allowed(l, "gateway", 100); got != tt.first {
				t.Errorf("at once: %d allowed, want %d", got, tt.first)
			}
			c.add(tt.wait)
			if got := allowed(l, "gateway", 100); got != tt.afterWait {
				t.Errorf("after %v: %d allowed, want %d", tt.wait, got, tt.afterWait)
			}
		})
	}
	t.Run("identities are separate", func(t *testing.T) {
		c := &fakeClock{t: time.Unix(1e9, 0)}
		l := New(1, 2, c.now)
		if allowed(l, "a", 10) != 2 || allowed(l, "b", 10) != 2 {
			t.Error("one identity's use limited another")
		}
		if err := l.Allow("a"); !errors.Is(err, ErrLimited) {
			t.Errorf("Allow over the limit = %v", err)
		}
	})
}
