package faultinject_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// TestParseSchedule: the one parser of fault schedules (PECET_FAULTS, the
// soak's --faults, the in-process soak).
func TestParseSchedule(t *testing.T) {
	tests := []struct {
		spec  string
		every time.Duration
		kinds string
		err   string
	}{
		{"3s", 3 * time.Second, "session,sessions2,remove,slow", ""},
		{"500ms:remove,slow", 500 * time.Millisecond, "remove,slow", ""},
		{"2s:session", 2 * time.Second, "session", ""},
		{"50ms", 0, "", "at least 100ms"},
		{"soon", 0, "", "INTERVAL"},
		{"", 0, "", "INTERVAL"},
		{"3s:unplug", 0, "", `unknown fault kind "unplug"`},
		{"3s:session,", 0, "", `unknown fault kind ""`},
		{"3s:" + strings.Repeat("session,", 40), 0, "", "at most 256"},
	}
	for _, tc := range tests {
		s, err := faultinject.ParseSchedule(tc.spec)
		if tc.err != "" {
			if !errors.Is(err, faultinject.ErrSchedule) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want ErrSchedule saying %q", tc.spec, err, tc.err)
			}
			continue
		}
		var names []string
		for _, k := range s.Kinds {
			names = append(names, k.Name)
		}
		if err != nil || s.Every != tc.every || strings.Join(names, ",") != tc.kinds {
			t.Errorf("%q: %v %v %v, want %v %s", tc.spec, s.Every, names, err, tc.every, tc.kinds)
		}
	}
}

// FuzzParseSchedule: any spec parses or is refused with ErrSchedule.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"3s", "1s:session,remove", "100ms:slow", "-1s", "3s::", "1h:sessions2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := faultinject.ParseSchedule(spec)
		if err != nil {
			if !errors.Is(err, faultinject.ErrSchedule) {
				t.Fatalf("%q: %v is not ErrSchedule", spec, err)
			}
			return
		}
		if s.Every < faultinject.MinEvery || len(s.Kinds) == 0 {
			t.Fatalf("%q: %+v", spec, s)
		}
	})
}

// TestScheduleRun: a schedule on a real SoftHSM token injects its kinds in
// turn, reports each window when it starts and when the token is ready
// again, and leaves the token healthy when its context ends.
func TestScheduleRun(t *testing.T) {
	cfg := softhsm.NewTokenConfig(t)
	cfg.RetryInterval = 10 * time.Millisecond
	f := &faultinject.Faults{}
	ks, err := faultinject.Open(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	if _, err := ks.CreateKey(context.Background(), "k", keystore.PurposeSign, keystore.ECP256); err != nil {
		t.Fatal(err)
	}
	sched, err := faultinject.ParseSchedule("100ms:remove,session")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu             sync.Mutex
		started, ended []faultinject.Window
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sched.Run(ctx, f, ks.Ping, faultinject.Hooks{
			Started: func(w faultinject.Window) { mu.Lock(); started = append(started, w); mu.Unlock() },
			Ended: func(w faultinject.Window) {
				mu.Lock()
				ended = append(ended, w)
				n := len(ended)
				mu.Unlock()
				if n == 2 {
					cancel()
				}
			},
		})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cancel()
		<-done
		t.Fatal("two faults took more than a minute")
	}
	if f.Injected.Load() == 0 {
		t.Error("no call got an injected failure")
	}
	for i, want := range []string{"remove", "session"} {
		if i >= len(ended) || len(started) < len(ended) {
			t.Fatalf("started %v, ended %v", started, ended)
		}
		s, e := started[i], ended[i]
		if s.N != i+1 || e.N != i+1 || s.Kind != want || e.Kind != want || !s.End.IsZero() || e.End.Before(e.Start.Add(faultinject.Grace)) {
			t.Errorf("window %d: started %+v, ended %+v, want kind %s", i+1, s, e, want)
		}
	}
	// A session lost to the last fault may still be found by the next
	// call, which recovers; the token is healthy again within seconds.
	testtool.Eventually(t, 10*time.Second, func() bool { return ks.Ping(context.Background()) == nil }, "the token ready after the schedule")
	if _, err := ks.GetKey(context.Background(), "k"); err != nil {
		t.Errorf("key after the schedule: %v", err)
	}
}
