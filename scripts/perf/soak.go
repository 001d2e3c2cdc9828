package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/internal/perf/soak"
)

// soakCmd runs the soak of docs/reliability.md, "Soak", against a real
// pecetd process (internal/perf/soak). It builds pecetd with -tags
// faultinject (the fault hook a release build lacks) and pecet into
// DIR/bin, measures the peak of `pecet bench --op mix` on a fresh dev
// folder, restarts pecetd with a fault every few seconds, runs the mix at
// the fraction of the peak, samples pecetd's RSS, and prints a summary.
// It returns the exit code: 0 when every invariant held, 1 when one broke
// (the summary says which), 2 when the soak could not run. DIR (default a
// new temporary folder) keeps the logs, the records and the audit log.
func soakCmd(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var o soak.Options
	fs.DurationVar(&o.Duration, "duration", 10*time.Minute, "duration of the mixed load")
	fs.DurationVar(&o.PeakDuration, "peak-duration", 20*time.Second, "duration of the peak measurement")
	fs.Float64Var(&o.Fraction, "fraction", 0.8, "fraction of the peak rate the load runs at")
	fs.StringVar(&o.Faults, "faults", "3s", "PECET_FAULTS for pecetd: INTERVAL[:KIND,...] (kinds session, sessions2, remove, slow)")
	fs.IntVar(&o.Concurrency, "concurrency", 512, "calls in flight at most")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "deadline of each call")
	fs.DurationVar(&o.SampleEvery, "sample", 5*time.Second, "RSS sampling interval")
	fs.StringVar(&o.Dir, "dir", "", "work `folder` (default: a new temporary one); kept")
	jsonOut := fs.String("json", "", "also write the report as JSON to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	failed, err := runSoak(o, *jsonOut)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "perf soak:", err)
		return 2
	case failed:
		return 1
	}
	return 0
}

// runSoak builds the binaries, runs the soak and reports whether an
// invariant broke.
func runSoak(o soak.Options, jsonOut string) (failed bool, err error) {
	// A schedule pecetd would refuse stops here, before the builds.
	if _, err := faultinject.ParseSchedule(o.Faults); err != nil {
		return false, err
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "pecet-soak-")
		if err != nil {
			return false, err
		}
		o.Dir = d
	}
	bin := filepath.Join(o.Dir, "bin")
	o.Pecetd, o.Pecet = filepath.Join(bin, "pecetd-faultinject"), filepath.Join(bin, "pecet")
	for _, b := range [][]string{
		{"build", "-tags", "faultinject", "-o", o.Pecetd, "./cmd/pecetd"},
		{"build", "-o", o.Pecet, "./cmd/pecet"},
	} {
		cmd := exec.Command("go", b...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return false, fmt.Errorf("go %v: %w", b, err)
		}
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "soak: work folder %s\n", o.Dir)
	rep, err := soak.Run(ctx, o)
	if err != nil {
		return false, err
	}
	fmt.Print(rep.Summary())
	if jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return false, err
		}
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return false, err
		}
	}
	return len(rep.Failures()) > 0, nil
}
