//go:build faultinject

package daemon

// The soak's fault hook (docs/reliability.md, "Soak"). Built only with
// `go build -tags faultinject ./cmd/pecetd`; a release pecetd has none of
// this file, so no variable or flag can make it fail its token on purpose.
// With PECET_FAULTS set, the token is opened behind keystore.Faults and a
// goroutine injects one fault every interval, in turn; each fault's window
// (from the injection until the token is ready again, plus a second) is
// appended to PECET_FAULT_LOG as a JSON line so that a load generator's
// errors can be attributed to it.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/keystore"
)

// Environment of the fault hook.
const (
	// EnvFaults is "INTERVAL" or "INTERVAL:KIND,KIND,...", e.g. "3s" or
	// "3s:session,remove"; kinds are faultKinds' names (default: all, in
	// that order).
	EnvFaults = "PECET_FAULTS"
	// EnvFaultLog is the file the fault windows are appended to.
	EnvFaultLog = "PECET_FAULT_LOG"
)

// faultGrace extends each window past the token's recovery: calls that
// were answered just after (queued behind the fault) still count as its.
const faultGrace = time.Second

// faultKind is one fault as the in-process soak (internal/server
// TestSoak) injects it.
type faultKind struct {
	name, what string
	run        func(ctx context.Context, f *keystore.Faults)
}

var faultKinds = []faultKind{
	{"session", "one lost session (CKR_SESSION_HANDLE_INVALID)", func(_ context.Context, f *keystore.Faults) {
		f.LoseSessions(1, pkcs11.CKR_SESSION_HANDLE_INVALID)
	}},
	{"sessions2", "two lost sessions (CKR_SESSION_CLOSED)", func(_ context.Context, f *keystore.Faults) {
		f.LoseSessions(2, pkcs11.CKR_SESSION_CLOSED)
	}},
	{"remove", "token removed for 300ms (CKR_DEVICE_REMOVED)", func(ctx context.Context, f *keystore.Faults) {
		f.RemoveToken()
		defer f.InsertToken()
		sleep(ctx, 300*time.Millisecond)
	}},
	{"slow", "slow token (200ms per operation) for 1s", func(ctx context.Context, f *keystore.Faults) {
		f.SetDelay(200 * time.Millisecond)
		defer f.SetDelay(0)
		sleep(ctx, time.Second)
	}},
}

// FaultWindow is one line of the fault log.
type FaultWindow struct {
	N     int       `json:"n"`
	Kind  string    `json:"kind"`
	What  string    `json:"what"`
	Start time.Time `json:"start"`
	// End is when the token was ready again plus faultGrace.
	End time.Time `json:"end"`
}

func init() {
	openStore = openWithFaults
}

func openWithFaults(ctx context.Context, cfg keystore.Config, log *slog.Logger) (*keystore.Store, error) {
	spec := os.Getenv(EnvFaults)
	if spec == "" {
		return keystore.Open(ctx, cfg)
	}
	every, kinds, err := parseFaults(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvFaults, err)
	}
	var out *os.File
	if p := os.Getenv(EnvFaultLog); p != "" {
		if out, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvFaultLog, err)
		}
	}
	f := &keystore.Faults{}
	ks, err := keystore.OpenWithFaults(ctx, cfg, f)
	if err != nil {
		if out != nil {
			out.Close()
		}
		return nil, err
	}
	log.Warn("FAULT INJECTION BUILD: token faults on a schedule", "every", every.String(), "log", os.Getenv(EnvFaultLog))
	go injectFaults(ctx, ks, f, every, kinds, out, log)
	return ks, nil
}

func parseFaults(spec string) (time.Duration, []faultKind, error) {
	iv, names, _ := strings.Cut(spec, ":")
	every, err := time.ParseDuration(iv)
	if err != nil || every < 100*time.Millisecond {
		return 0, nil, fmt.Errorf("%q: want INTERVAL[:KIND,...] with an interval of at least 100ms", spec)
	}
	if names == "" {
		return every, faultKinds, nil
	}
	var kinds []faultKind
	for _, n := range strings.Split(names, ",") {
		i := -1
		for j, k := range faultKinds {
			if k.name == n {
				i = j
			}
		}
		if i < 0 {
			return 0, nil, fmt.Errorf("unknown fault kind %q (session, sessions2, remove, slow)", n)
		}
		kinds = append(kinds, faultKinds[i])
	}
	return every, kinds, nil
}

// injectFaults runs until ctx ends (SIGTERM), then leaves the token
// healthy for the drain.
func injectFaults(ctx context.Context, ks *keystore.Store, f *keystore.Faults, every time.Duration, kinds []faultKind, out *os.File, log *slog.Logger) {
	defer func() {
		f.LoseSessions(0, 0)
		f.InsertToken()
		f.SetDelay(0)
		if out != nil {
			out.Close()
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k := kinds[n%len(kinds)]
		w := FaultWindow{N: n + 1, Kind: k.name, What: k.what, Start: time.Now()}
		k.run(ctx, f)
		// Lost sessions show only when the next operations run; what
		// the load has not used up by then is withdrawn.
		sleep(ctx, 200*time.Millisecond)
		f.LoseSessions(0, 0)
		for ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := ks.Ping(pctx)
			cancel()
			if err == nil {
				break
			}
			sleep(ctx, 20*time.Millisecond)
		}
		w.End = time.Now().Add(faultGrace)
		log.Info("fault injected", "n", w.N, "kind", w.Kind, "start", w.Start, "end", w.End)
		if out != nil {
			b, _ := json.Marshal(w)
			_, _ = out.Write(append(b, '\n'))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
