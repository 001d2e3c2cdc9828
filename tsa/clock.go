package tsa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reference measures the system clock against a time reference.
type Reference interface {
	// Offset returns reference time minus system time, and how far the
	// measurement itself may be off.
	Offset(ctx context.Context) (offset, uncertainty time.Duration, err error)
}

// HTTPDate is a Reference that reads the Date header of an HTTP server
// (a HEAD request). The header has a resolution of one second, so it
// catches a clock that is grossly wrong (stepped by minutes, a dead RTC),
// not one that is a few milliseconds off: chrony or NTP keeps the time,
// this checks that they do.
type HTTPDate struct {
	URL    string
	Client *http.Client // nil: a client with a 5 s timeout
	Now    func() time.Time
}

// Offset implements Reference.
func (h HTTPDate) Offset(ctx context.Context) (time.Duration, time.Duration, error) {
	now := h.Now
	if now == nil {
		now = time.Now
	}
	cl := h.Client
	if cl == nil {
		cl = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, h.URL, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("time reference: %w", err)
	}
	t0 := now()
	resp, err := cl.Do(req)
	t1 := now()
	if err != nil {
		return 0, 0, fmt.Errorf("time reference: %w", err)
	}
	resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, 0, fmt.Errorf("time reference %s: no usable Date header", h.URL)
	}
	// The server's clock read somewhere in [t0, t1] and the header drops
	// the fraction: compare the middles, and admit both halves as error.
	rtt := t1.Sub(t0)
	mid := t0.Add(rtt / 2)
	ref := date.Add(500 * time.Millisecond)
	return ref.Sub(mid), rtt/2 + 500*time.Millisecond, nil
}

// OffsetFile is a Reference that reads the clock's offset in seconds (a
// decimal number, such as the system time offset `chronyc -c tracking`
// prints) from a file that a monitor rewrites regularly (docs/tsa.md). Only
// its magnitude counts, so either sign convention works. A file older than
// MaxAge is no evidence.
type OffsetFile struct {
	Path   string
	MaxAge time.Duration // zero: 5 minutes
	Now    func() time.Time
}

// Offset implements Reference.
func (f OffsetFile) Offset(context.Context) (time.Duration, time.Duration, error) {
	now := f.Now
	if now == nil {
		now = time.Now
	}
	maxAge := f.MaxAge
	if maxAge == 0 {
		maxAge = 5 * time.Minute
	}
	st, err := os.Stat(f.Path)
	if err != nil {
		return 0, 0, fmt.Errorf("time reference: %w", err)
	}
	if age := now().Sub(st.ModTime()); age > maxAge {
		return 0, 0, fmt.Errorf("time reference %s is %v old (more than %v)", f.Path, age.Round(time.Second), maxAge)
	}
	b, err := os.ReadFile(f.Path)
	if err != nil || len(b) > 64 {
		return 0, 0, fmt.Errorf("time reference %s: unreadable", f.Path)
	}
	sec, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil || sec != sec || sec > 1e9 || sec < -1e9 {
		return 0, 0, fmt.Errorf("time reference %s: not a number of seconds", f.Path)
	}
	return time.Duration(sec * float64(time.Second)), 0, nil
}

// ClockGuard keeps the last comparison of the system clock with a
// Reference. The clock is trusted while the last check succeeded, is not
// older than MaxAge, and found the offset within Accuracy (allowing for
// the measurement's own uncertainty: only an offset certainly beyond the
// accuracy stops issuing, otherwise a coarse reference would stop it all
// the time).
type ClockGuard struct {
	Ref      Reference
	Accuracy time.Duration
	// MaxAge: a result older than this is no longer trusted (zero: 2 min).
	MaxAge time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	checked time.Time
	err     error
	offset  time.Duration
}

func (g *ClockGuard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Check measures once and records the result; it returns what Err will.
func (g *ClockGuard) Check(ctx context.Context) error {
	off, unc, err := g.Ref.Offset(ctx)
	if err == nil {
		abs := off
		if abs < 0 {
			abs = -abs
		}
		if abs-unc > g.Accuracy {
			err = fmt.Errorf("%w: the clock is %v off the reference, more than the accuracy %v", ErrTimeNotAvailable, off.Round(time.Millisecond), g.Accuracy)
		}
	} else {
		err = fmt.Errorf("%w: %w", ErrTimeNotAvailable, err)
	}
	g.mu.Lock()
	g.checked, g.err, g.offset = g.now(), err, off
	g.mu.Unlock()
	return err
}

// Err is nil while the clock is trusted, else an ErrTimeNotAvailable
// saying why.
func (g *ClockGuard) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	maxAge := g.MaxAge
	if maxAge == 0 {
		maxAge = 2 * time.Minute
	}
	switch {
	case g.checked.IsZero():
		return fmt.Errorf("%w: the clock has not been checked yet", ErrTimeNotAvailable)
	case g.err != nil:
		return g.err
	case g.now().Sub(g.checked) > maxAge:
		return fmt.Errorf("%w: the last clock check is older than %v", ErrTimeNotAvailable, maxAge)
	}
	return nil
}

// Run checks every interval until ctx ends, calling report (may be nil)
// when the verdict changes between trusted and not.
func (g *ClockGuard) Run(ctx context.Context, interval time.Duration, report func(error)) {
	was := errors.New("unknown")
	for {
		err := g.Check(ctx)
		if report != nil && (err == nil) != (was == nil) {
			report(err)
		}
		was = err
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
