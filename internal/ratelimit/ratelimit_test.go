package ratelimit

import (
	"errors"
	"strconv"
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

// TestLimiterBounded: with a maximum, the table never holds more than it
// (plus the shared overflow bucket), however many identities call; idle
// buckets are swept out so new identities get their own again, and while
// the table is full of active ones the newcomers share one bucket.
func TestLimiterBounded(t *testing.T) {
	c := &fakeClock{t: time.Unix(1e9, 0)}
	l := NewBounded(1, 2, 100, c.now)
	for i := range 10000 {
		_ = l.Allow(strconv.Itoa(i))
	}
	if n := l.Len(); n > 101 {
		t.Fatalf("%d buckets for a maximum of 100", n)
	}
	// The overflow bucket is shared: new identities are limited together.
	if allowed(l, "new-1", 5)+allowed(l, "new-2", 5) != 0 {
		t.Error("newcomers got through a full table's exhausted overflow bucket")
	}
	// After the burst's refill time the old buckets are full, hence swept.
	c.add(3 * time.Second)
	if got := allowed(l, "later", 5); got != 2 {
		t.Errorf("after the sweep a new identity got %d of its burst 2", got)
	}
	if n := l.Len(); n > 101 {
		t.Fatalf("%d buckets after the sweep", n)
	}
}

func TestAddrKey(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.1:4321", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:80", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := AddrKey(c.in); got != c.want {
			t.Errorf("AddrKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
