package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// goalsCmd: perf goals. It runs every measurement of the performance goals
// (docs/performance.md "Goals") against one pecetd on the dev token, each
// --rounds times, under the machine's benchmark lock (/tmp/perf.lock, the
// one `flock /tmp/perf.lock` takes), and prints one Markdown table: goal,
// what each round measured, met or not. The ratios are each taken within
// one `pecet bench --baseline` run (docs/performance.md "Method").
func goalsCmd(args []string) error {
	fs := flag.NewFlagSet("goals", flag.ContinueOnError)
	devDir := fs.String("dev-dir", "", "pecetd dev folder `DIR` (made with pecetd --dev and perf eckey if missing; default: a new one in the temporary directory)")
	bin := fs.String("bin", "", "`DIR` holding pecet and pecetd (default: built from this checkout)")
	dur := fs.Duration("duration", 5*time.Second, "measured duration of each run")
	warm := fs.Duration("warmup", time.Second, "warm-up of each run")
	rounds := fs.Int("rounds", 2, "times each measurement is repeated")
	withSigstore := fs.Bool("sigstore", false, "also run perf sigstore (the RFC 3161 HTTP peer comparison; builds the peer from the Go module proxy) with the same binaries and dev folder, and print its table after this one")
	lock := fs.String("lock", "/tmp/perf.lock", "`file` locked (flock) for the whole run, so that two people's benchmarks never overlap; empty: no lock")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *dur <= 0 {
		return errors.New("--rounds and --duration must be positive")
	}
	if *lock != "" {
		f, err := os.OpenFile(*lock, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintln(os.Stderr, "perf goals: waiting for the lock", *lock)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			return fmt.Errorf("flock %s: %w", *lock, err)
		}
	}
	tmp, err := os.MkdirTemp("", "pecet-goals-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *devDir == "" {
		*devDir = filepath.Join(tmp, "dev")
	}
	if *devDir, err = filepath.Abs(*devDir); err != nil {
		return err
	}
	if *bin == "" {
		*bin = filepath.Join(tmp, "bin")
		fmt.Fprintln(os.Stderr, "perf goals: building pecet and pecetd")
		if err := run(".", nil, "go", "build", "-o", *bin+"/", "./cmd/pecet", "./cmd/pecetd"); err != nil {
			return err
		}
	}
	pecet, pecetd := filepath.Join(*bin, "pecet"), filepath.Join(*bin, "pecetd")
	if err := ensureDevDir(pecetd, *devDir, tmp); err != nil {
		return err
	}
	cfg := filepath.Join(*devDir, "pecet-bench.yaml")
	if _, err := os.Stat(cfg); err != nil {
		if err := ecKey([]string{"--dev-dir", *devDir}); err != nil {
			return err
		}
	}
	grpcAddr, httpAddr := freeAddr(), freeAddr()
	stop, err := start(filepath.Join(tmp, "pecetd.log"), pecetd, "--config", cfg, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	if err := waitHTTP("http://" + httpAddr + "/readyz"); err != nil {
		return err
	}
	bench := func(args ...string) (goalRun, error) {
		a := append([]string{"bench", "--server", grpcAddr, "--config", cfg, "--dev-dir", *devDir,
			"--duration", dur.String(), "--warmup", warm.String(), "--json"}, args...)
		cmd := exec.Command(pecet, a...)
		cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(*devDir, "softhsm2.conf"), "PECET_DEV_DIR="+*devDir)
		load := loadAvg()
		out, err := cmd.Output()
		var r goalRun
		if err != nil {
			return r, fmt.Errorf("pecet %s: %w\n%s", strings.Join(a, " "), err, out)
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return r, fmt.Errorf("pecet bench output: %w", err)
		}
		r.Load = load + "→" + loadAvg()
		if n := r.errors(); n > 0 {
			return r, fmt.Errorf("pecet %s: %d errors or wrong answers", strings.Join(a, " "), n)
		}
		return r, nil
	}
	fmt.Fprintf(os.Stderr, "perf goals: pecetd %s, dev folder %s, %d rounds of %v runs\n", grpcAddr, *devDir, *rounds, *dur)
	var rows []goalRow
	for _, g := range goalList() {
		row := goalRow{goal: g.name}
		for range *rounds {
			m, ok, err := g.measure(bench)
			if err != nil {
				return fmt.Errorf("%s: %w", g.name, err)
			}
			row.measured = append(row.measured, m)
			if ok {
				row.met++
			}
		}
		rows = append(rows, row)
		fmt.Fprintf(os.Stderr, "perf goals: %s: %s\n", g.name, strings.Join(row.measured, "; "))
	}
	fmt.Printf("%s, load average (1 min) per run in brackets, %d rounds of %v (warm-up %v), audit.sync: event\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), *rounds, *dur, *warm)
	fmt.Println("| Goal | Measured (each round) | Met |")
	fmt.Println("|---|---|---|")
	for _, r := range rows {
		met := "no"
		switch r.met {
		case len(r.measured):
			met = "yes"
		case 0:
		default:
			met = fmt.Sprintf("%d of %d rounds", r.met, len(r.measured))
		}
		fmt.Printf("| %s | %s | %s |\n", r.goal, strings.Join(r.measured, "; "), met)
	}
	if !*withSigstore {
		return nil
	}
	// perf sigstore starts pecetd on the dev config, whose audit file is
	// the one this pecetd holds locked.
	stop()
	stopped = true
	fmt.Println("\nGoals: RFC 3161 over HTTP, pecet/sigstore ≥ 1.3 for RSA-2048 and ≥ 1.0 for P-256 (with a p99 no worse) at c1, c16, c64:")
	fmt.Println()
	return sigstoreCmp([]string{"--bin", *bin, "--dev-dir", *devDir, "--duration", dur.String(), "--warmup", warm.String()})
}

// goalRun is what goals reads from `pecet bench --json`.
type goalRun struct {
	benchResult
	Ratio        float64 `json:"ratio"`
	CeilingRatio float64 `json:"ceiling_ratio"`
	Raw          float64 `json:"baseline_ops_per_s"`
	RawConc      int     `json:"baseline_concurrency"`
	Ceiling      float64 `json:"ceiling_ops_per_s"`
	Load         string  `json:"-"`
}

type goalRow struct {
	goal     string
	measured []string
	met      int
}

type goalBench func(args ...string) (goalRun, error)

// goal is one line of the table: measure runs it once and says what it
// measured and whether the goal held.
type goal struct {
	name    string
	measure func(goalBench) (string, bool, error)
}

// goalList is the goals of docs/performance.md "Goals", in its order.
func goalList() []goal {
	single := func(name string, least float64, args ...string) goal {
		return goal{name, func(b goalBench) (string, bool, error) {
			r, err := b(append(args, "--concurrency", "16", "--baseline")...)
			if err != nil {
				return "", false, err
			}
			return fmt.Sprintf("%.0f/s, ceiling %.0f/s (raw %.0f): **%.2f** (%s)", r.Rate, r.Ceiling, r.Raw, r.CeilingRatio, r.Load),
				r.CeilingRatio >= least, nil
		}}
	}
	batch := func(name string, least float64, args ...string) goal {
		return goal{name, func(b goalBench) (string, bool, error) {
			r, err := b(append(args, "--batch", "64", "--concurrency", "4", "--baseline")...)
			if err != nil {
				return "", false, err
			}
			return fmt.Sprintf("%.0f items/s, raw %.0f/s at %d sessions: **%.2f** (%s)", r.Rate, r.Raw, r.RawConc, r.Ratio, r.Load),
				r.Ratio >= least, nil
		}}
	}
	return []goal{
		single("Sign-digest RSA-2048, c16, ≥ 0.80 of the ceiling", 0.80, "--op", "sign-digest", "--key", "client-sign"),
		single("Sign-digest P-256, c16, ≥ 0.80 of the ceiling", 0.80, "--op", "sign-digest", "--key", "bench-ec"),
		single("Decrypt 1 KB CMS (RSA-2048), c16, ≥ 0.80 of the ceiling", 0.80, "--op", "decrypt", "--size", "1k"),
		single("Timestamp over gRPC (RSA-2048), c16, ≥ 0.80 of the ceiling", 0.80, "--op", "timestamp", "--key", "tsa"),
		batch("SignDigests RSA-2048, 64 a call, c4, ≥ 0.90 of raw", 0.90, "--op", "sign-digests", "--key", "client-sign"),
		batch("SignDigests P-256, 64 a call, c4, ≥ 0.80 of raw", 0.80, "--op", "sign-digests", "--key", "bench-ec"),
		batch("TimestampBatch (RSA-2048), 64 a call, c4, ≥ 0.80 of raw", 0.80, "--op", "timestamp-batch", "--key", "tsa"),
		{"p99 at half the peak rate ≤ 3 × the single-call latency (RSA-2048 sign-digest)", halfPeak},
	}
}

// halfPeak measures the peak (closed loop, c16), the single-call latency
// (the p50 at one caller) and the p99 of an open loop at half the peak.
func halfPeak(b goalBench) (string, bool, error) {
	key := []string{"--op", "sign-digest", "--key", "client-sign"}
	peak, err := b(append(key, "--concurrency", "16")...)
	if err != nil {
		return "", false, err
	}
	one, err := b(append(key, "--concurrency", "1")...)
	if err != nil {
		return "", false, err
	}
	half := peak.Rate / 2
	open, err := b(append(key, "--concurrency", "16", "--rate", strconv.FormatFloat(half, 'f', 0, 64))...)
	if err != nil {
		return "", false, err
	}
	single, p99 := one.Latency["p50"], open.Latency["p99"]
	x := 0.0
	if single > 0 {
		x = p99 / single
	}
	// The c1 p99 beside it: a tail that one caller alone already has is
	// the machine's (the fsync, the neighbours), not queueing.
	return fmt.Sprintf("peak %.0f/s; c1 %.0f/s, p50 %.2f ms, p99 %.2f ms; at %.0f/s p99 %.2f ms: **%.1f×** (%s; %s; %s)",
			peak.Rate, one.Rate, single, one.Latency["p99"], half, p99, x, peak.Load, one.Load, open.Load),
		x > 0 && x <= 3, nil
}
