package ratelimit

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
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

// TestAllowN: a batch takes one token per item, all or nothing: when the
// bucket lacks some of them none are taken (a single call after it still
// gets the rest), and a batch larger than the burst is ErrExceedsBurst,
// never ErrLimited, since no wait would ever let it through.
func TestAllowN(t *testing.T) {
	type step struct {
		wait time.Duration // before the call
		n    int
		want error // nil, ErrLimited or ErrExceedsBurst
	}
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps []step
	}{
		{"off", 0, 0, []step{{0, 1e6, nil}, {0, 1e6, nil}}},
		{"exactly the burst, then nothing", 10, 10, []step{{0, 10, nil}, {0, 1, ErrLimited}}},
		{"two halves", 10, 10, []step{{0, 5, nil}, {0, 5, nil}, {0, 1, ErrLimited}}},
		{"all or nothing", 10, 10, []step{{0, 7, nil}, {0, 5, ErrLimited}, {0, 3, nil}, {0, 1, ErrLimited}}},
		{"larger than the burst", 10, 10, []step{{0, 11, ErrExceedsBurst}, {0, 10, nil}}},
		{"larger than the burst after an idle hour", 10, 10, []step{{time.Hour, 50, ErrExceedsBurst}}},
		{"refill", 10, 10, []step{{0, 10, nil}, {500 * time.Millisecond, 6, ErrLimited}, {0, 5, nil}, {0, 1, ErrLimited}}},
		{"default burst is the rate", 2.5, 0, []step{{0, 4, ErrExceedsBurst}, {0, 3, nil}}},
		{"nothing costs nothing", 10, 10, []step{{0, 10, nil}, {0, 0, nil}, {0, -1, nil}, {0, 1, ErrLimited}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{t: time.Unix(1e9, 0)}
			l := New(tt.rate, tt.burst, c.now)
			for i, s := range tt.steps {
				c.add(s.wait)
				err := l.AllowN("gateway", s.n)
				if (err == nil) != (s.want == nil) || (s.want != nil && !errors.Is(err, s.want)) {
					t.Fatalf("step %d: AllowN(%d) = %v, want %v", i, s.n, err, s.want)
				}
				if errors.Is(err, ErrExceedsBurst) && errors.Is(err, ErrLimited) {
					t.Fatalf("step %d: %v is both", i, err)
				}
			}
		})
	}
}

// TestBurst: the bucket's size as NewBounded settles it; 0 without a
// limit.
func TestBurst(t *testing.T) {
	for _, c := range []struct {
		l    *Limiter
		want int
	}{
		{nil, 0},
		{New(0, 0, nil), 0},
		{New(10, 25, nil), 25},
		{New(2.5, 0, nil), 3},
		{New(0.1, 0, nil), 1},
	} {
		if got := c.l.Burst(); got != c.want {
			t.Errorf("Burst() = %d, want %d", got, c.want)
		}
	}
}

// TestAllowNRace: concurrent batches never take more than the bucket
// holds (run with -race).
func TestAllowNRace(t *testing.T) {
	l := New(1e-9, 100, nil) // no refill to speak of
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				if l.AllowN("client", 3) == nil {
					ok.Add(3)
				}
			}
		})
	}
	wg.Wait()
	if got := ok.Load(); got > 100 || got < 99 {
		t.Errorf("%d tokens taken from a bucket of 100 in batches of 3", got)
	}
}
