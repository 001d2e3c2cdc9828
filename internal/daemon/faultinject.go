//go:build faultinject

package daemon

// The soak's fault hook (docs/reliability.md, "Soak"). Built only with
// `go build -tags faultinject ./cmd/pecetd`; a release pecetd has none of
// this file, so no variable or flag can make it fail its token on purpose.
// With PECET_FAULTS set, the token is opened behind faultinject.Faults and
// the schedule it names injects one fault every interval, in turn; each
// fault's window (from the injection until the token is ready again, plus
// faultinject.Grace) is appended to PECET_FAULT_LOG as a JSON line so that
// a load generator's errors can be attributed to it.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/keystore"
)

// Environment of the fault hook.
const (
	// EnvFaults is the fault schedule, "INTERVAL" or
	// "INTERVAL:KIND,KIND,...", e.g. "3s" or "3s:session,remove"
	// (faultinject.ParseSchedule).
	EnvFaults = "PECET_FAULTS"
	// EnvFaultLog is the file the fault windows are appended to.
	EnvFaultLog = "PECET_FAULT_LOG"
)

func init() {
	openStore = openWithFaults
}

func openWithFaults(ctx context.Context, cfg keystore.Config, log *slog.Logger) (*keystore.Store, error) {
	spec := os.Getenv(EnvFaults)
	if spec == "" {
		return keystore.Open(ctx, cfg)
	}
	sched, err := faultinject.ParseSchedule(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvFaults, err)
	}
	var out *os.File
	if p := os.Getenv(EnvFaultLog); p != "" {
		if out, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvFaultLog, err)
		}
	}
	f := &faultinject.Faults{}
	ks, err := faultinject.Open(ctx, cfg, f)
	if err != nil {
		if out != nil {
			out.Close()
		}
		return nil, err
	}
	log.Warn("FAULT INJECTION BUILD: token faults on a schedule", "every", sched.Every.String(), "log", os.Getenv(EnvFaultLog))
	// Runs until ctx ends (SIGTERM), then leaves the token healthy for
	// the drain.
	go func() {
		if out != nil {
			defer out.Close()
		}
		sched.Run(ctx, f, ks.Ping, faultinject.Hooks{Ended: func(w faultinject.Window) {
			log.Info("fault injected", "n", w.N, "kind", w.Kind, "start", w.Start, "end", w.End)
			if out != nil {
				b, _ := json.Marshal(w)
				_, _ = out.Write(append(b, '\n'))
			}
		}})
	}()
	return ks, nil
}
