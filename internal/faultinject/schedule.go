package faultinject

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// Kind is one fault a Schedule injects.
type Kind struct {
	Name string // as PECET_FAULTS names it: session, sessions2, remove, slow
	What string // what it does, for logs and the fault log
	run  func(ctx context.Context, f *Faults)
}

// Kinds are the faults a Schedule knows, in the order it injects them by
// default.
var Kinds = []Kind{
	{"session", "one lost session (CKR_SESSION_HANDLE_INVALID)", func(_ context.Context, f *Faults) {
		f.LoseSessions(1, pkcs11.CKR_SESSION_HANDLE_INVALID)
	}},
	{"sessions2", "two lost sessions (CKR_SESSION_CLOSED)", func(_ context.Context, f *Faults) {
		f.LoseSessions(2, pkcs11.CKR_SESSION_CLOSED)
	}},
	{"remove", "token removed for 300ms (CKR_DEVICE_REMOVED)", func(ctx context.Context, f *Faults) {
		f.RemoveToken()
		defer f.InsertToken()
		sleep(ctx, 300*time.Millisecond)
	}},
	{"slow", "slow token (200ms per operation) for 1s", func(ctx context.Context, f *Faults) {
		f.SetDelay(200 * time.Millisecond)
		defer f.SetDelay(0)
		sleep(ctx, time.Second)
	}},
}

// MinEvery is the shortest interval a Schedule accepts: a fault and the
// token's recovery take a few hundred milliseconds.
const MinEvery = 100 * time.Millisecond

// Grace extends each window past the token's recovery: calls answered
// just after it (queued behind the fault) still count as the fault's.
const Grace = time.Second

// ErrSchedule is a schedule spec that does not parse.
var ErrSchedule = errors.New("fault schedule")

// Schedule is one fault every Every, taking Kinds in turn. pecetd built
// with -tags faultinject reads it from PECET_FAULTS, the soak passes it
// there, and the in-process soak (internal/server TestSoak) runs it itself.
type Schedule struct {
	Every time.Duration
	Kinds []Kind
}

// maxSpec bounds a spec: four kind names fit many times over.
const maxSpec = 256

// ParseSchedule reads "INTERVAL" or "INTERVAL:KIND,KIND,...", e.g. "3s" or
// "3s:session,remove"; without kinds, all of Kinds in their order.
func ParseSchedule(spec string) (Schedule, error) {
	if len(spec) > maxSpec {
		return Schedule{}, fmt.Errorf("%w: %d bytes, at most %d", ErrSchedule, len(spec), maxSpec)
	}
	iv, names, _ := strings.Cut(spec, ":")
	every, err := time.ParseDuration(iv)
	if err != nil || every < MinEvery {
		return Schedule{}, fmt.Errorf("%w: %q: want INTERVAL[:KIND,...] with an interval of at least %v", ErrSchedule, spec, MinEvery)
	}
	if names == "" {
		return Schedule{Every: every, Kinds: Kinds}, nil
	}
	s := Schedule{Every: every}
	for n := range strings.SplitSeq(names, ",") {
		i := -1
		for j, k := range Kinds {
			if k.Name == n {
				i = j
			}
		}
		if i < 0 {
			return Schedule{}, fmt.Errorf("%w: unknown fault kind %q (session, sessions2, remove, slow)", ErrSchedule, n)
		}
		s.Kinds = append(s.Kinds, Kinds[i])
	}
	return s, nil
}

// Window is one fault, from its injection until the token was ready again
// plus Grace: a call that failed must overlap one. pecetd's fault log has
// one a JSON line (PECET_FAULT_LOG).
type Window struct {
	N     int       `json:"n"`
	Kind  string    `json:"kind"`
	What  string    `json:"what"`
	Start time.Time `json:"start"`
	// End is when the token was ready again plus Grace; zero while the
	// fault lasts.
	End time.Time `json:"end"`
}

// Hooks see each window; either may be nil.
type Hooks struct {
	// Started is called before the fault is injected (End zero).
	Started func(Window)
	// Ended is called when the token is ready again.
	Ended func(Window)
}

// Run injects one fault every s.Every into f, in turn, until ctx ends;
// after each it waits until ready answers nil (the token recovered). It
// leaves the token healthy when it returns.
func (s Schedule) Run(ctx context.Context, f *Faults, ready func(context.Context) error, h Hooks) {
	defer func() {
		f.LoseSessions(0, 0)
		f.InsertToken()
		f.SetDelay(0)
	}()
	if len(s.Kinds) == 0 {
		return
	}
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k := s.Kinds[n%len(s.Kinds)]
		w := Window{N: n + 1, Kind: k.Name, What: k.What, Start: time.Now()}
		if h.Started != nil {
			h.Started(w)
		}
		k.run(ctx, f)
		// Lost sessions show only when the next operations run; what
		// the load has not used up by then is withdrawn.
		sleep(ctx, 200*time.Millisecond)
		f.LoseSessions(0, 0)
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := ready(pctx)
			cancel()
			if err == nil {
				break
			}
			sleep(ctx, 20*time.Millisecond)
		}
		w.End = time.Now().Add(Grace)
		if h.Ended != nil {
			h.Ended(w)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
