package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pecet-hsm/pecet/internal/faultinject"
)

// Options configure a soak.
type Options struct {
	// Pecetd is a pecetd built with -tags faultinject; Pecet the client.
	Pecetd, Pecet string
	// Dir is the work folder: the dev folder (Dir/dev), the logs, the
	// records. Kept after the run for inspection.
	Dir string
	// Duration of the mixed load (default 10m).
	Duration time.Duration
	// PeakDuration of the closed-loop peak measurement (default 20s).
	PeakDuration time.Duration
	// Fraction of the peak the load runs at (default 0.8).
	Fraction float64
	// Faults is PECET_FAULTS for pecetd, a faultinject.ParseSchedule spec
	// (default "3s": one fault every 3 s, in turn lost session, two lost
	// sessions, token removed, slow token).
	Faults string
	// Concurrency bounds the calls in flight (default 512: room for the
	// slow-token windows, when calls take 200 ms and more).
	Concurrency int
	// Timeout is each call's deadline (default 5s).
	Timeout time.Duration
	// SampleEvery is the RSS sampling interval (default 5s).
	SampleEvery time.Duration
	// Progress receives what the soak is doing (may be nil).
	Progress io.Writer
}

func (o *Options) defaults() {
	if o.Duration == 0 {
		o.Duration = 10 * time.Minute
	}
	if o.PeakDuration == 0 {
		o.PeakDuration = 20 * time.Second
	}
	if o.Fraction == 0 {
		o.Fraction = 0.8
	}
	if o.Faults == "" {
		o.Faults = "3s"
	}
	if o.Concurrency == 0 {
		o.Concurrency = 512
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = 5 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Sample is one RSS reading of pecetd.
type Sample struct {
	At     time.Duration `json:"at"` // since the load began
	RSSKiB int64         `json:"rss_kib"`
}

// Report is what a soak found.
type Report struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// Peak is the closed-loop rate of the mix without faults; Rate the
	// open-loop rate asked of the soak (Fraction of Peak).
	Peak, Rate float64
	Achieved   float64 `json:"achieved_rate"` // calls started per second
	Skipped    int64   `json:"skipped_starts"`
	Calls      Calls
	Faults     map[string]int // windows by kind
	FaultTime  time.Duration  `json:"fault_time"` // sum of the windows
	Audit      AuditMatch
	// AuditVerify is `pecet audit verify`'s output and its exit status.
	AuditVerify     string
	AuditVerifyExit int
	PecetdExit      int
	RSS             []Sample
	// LoadBefore and LoadAfter are /proc/loadavg at the load's start and
	// end.
	LoadBefore, LoadAfter string
}

// RSSFirst, RSSMax and RSSLast summarise the series (KiB).
func (r Report) RSSFirst() int64 { return r.rss(func(s []Sample) int64 { return s[0].RSSKiB }) }
func (r Report) RSSLast() int64  { return r.rss(func(s []Sample) int64 { return s[len(s)-1].RSSKiB }) }
func (r Report) RSSMax() int64 {
	return r.rss(func(s []Sample) int64 {
		m := int64(0)
		for _, x := range s {
			m = max(m, x.RSSKiB)
		}
		return m
	})
}

func (r Report) rss(f func([]Sample) int64) int64 {
	if len(r.RSS) == 0 {
		return 0
	}
	return f(r.RSS)
}

// RSSSlope is the least-squares slope of the second half of the RSS series
// in KiB per minute: a leak shows as a steady positive slope once the
// process has warmed up.
func (r Report) RSSSlope() float64 {
	s := r.RSS[len(r.RSS)/2:]
	if len(s) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range s {
		x, y := p.At.Minutes(), float64(p.RSSKiB)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(s))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// Failures lists the invariants the soak broke; none means it passed. RSS
// is judged by whoever reads the series (a short run cannot tell a leak).
func (r Report) Failures() []string {
	var f []string
	add := func(cond bool, format string, a ...any) {
		if cond {
			f = append(f, fmt.Sprintf(format, a...))
		}
	}
	c, a := r.Calls, r.Audit
	add(c.Total == 0 || c.OK == 0, "no call succeeded (%d calls)", c.Total)
	add(c.Wrong > 0, "%d wrong answers", c.Wrong)
	add(c.OutOfWindow > 0, "%d errors outside every fault window", c.OutOfWindow)
	add(c.Unexpected > 0, "%d errors with a code no fault explains: %v", c.Unexpected, c.Errors)
	add(len(r.Faults) == 0, "no fault was injected")
	add(r.AuditVerifyExit != 0, "pecet audit verify: exit %d: %s", r.AuditVerifyExit, strings.TrimSpace(r.AuditVerify))
	add(a.Missing > 0, "%d answered calls without an audit line", a.Missing)
	add(a.Duplicated > 0, "%d calls audited more than once", a.Duplicated)
	add(a.Unfinished > 0, "%d begin lines without an end", a.Unfinished)
	add(a.Orphans > 0, "%d end lines without a begin", a.Orphans)
	add(a.Unknown > 0, "%d audited inputs no recorded call sent", a.Unknown)
	add(a.OutcomeDiffers > 0, "%d audit outcomes that differ from the answer", a.OutcomeDiffers)
	add(a.Denied > 0, "%d denied calls", a.Denied)
	add(r.PecetdExit != 0, "pecetd exited %d after SIGTERM", r.PecetdExit)
	return f
}

// Run measures the peak of the mix on a pecetd without faults, restarts
// pecetd with PECET_FAULTS, runs the mix at Fraction of the peak for
// Duration while sampling pecetd's RSS, stops pecetd and checks the
// records, the fault log and the audit log.
func Run(ctx context.Context, o Options) (Report, error) {
	o.defaults()
	var rep Report
	// The schedule pecetd will parse, checked before the peak run.
	if _, err := faultinject.ParseSchedule(o.Faults); err != nil {
		return rep, err
	}
	dev := filepath.Join(o.Dir, "dev")
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return rep, err
	}
	// 1. The peak, closed loop, no faults (this start also makes the dev
	// folder and its keys).
	fmt.Fprintf(o.Progress, "soak: measuring the peak of the mix for %v (no faults)\n", o.PeakDuration)
	d, err := start(ctx, o, dev, "peak", nil)
	if err != nil {
		return rep, err
	}
	var peak benchOut
	err = o.bench(ctx, dev, "peak", &peak, "--op", "mix", "--concurrency", "16", "--duration", o.PeakDuration.String(), "--warmup", "2s")
	if code := d.stop(); err == nil && code != 0 {
		err = fmt.Errorf("pecetd (peak) exited %d", code)
	}
	if err != nil {
		return rep, err
	}
	if peak.OpsPerS <= 0 || peak.Wrong > 0 || len(peak.Errors) > 0 {
		return rep, fmt.Errorf("peak measurement: %.1f/s, %d wrong, errors %v", peak.OpsPerS, peak.Wrong, peak.Errors)
	}
	rep.Peak, rep.Rate = peak.OpsPerS, peak.OpsPerS*o.Fraction
	// The soak's pecetd writes a fresh audit log: the peak's goes aside.
	if err := os.Rename(filepath.Join(dev, "audit.log"), filepath.Join(o.Dir, "audit-peak.log")); err != nil {
		return rep, err
	}

	// 2. The soak.
	faultLog := filepath.Join(o.Dir, "faults.jsonl")
	_ = os.Remove(faultLog)
	d, err = start(ctx, o, dev, "soak", []string{"PECET_FAULTS=" + o.Faults, "PECET_FAULT_LOG=" + faultLog})
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(o.Progress, "soak: peak %.1f/s; mix at %.1f/s for %v, faults %q, pecetd pid %d\n", rep.Peak, rep.Rate, o.Duration, o.Faults, d.cmd.Process.Pid)
	rep.Started, rep.LoadBefore = time.Now(), loadavg()
	sctx, stopSampling := context.WithCancel(ctx)
	samples := make(chan []Sample, 1)
	go func() { samples <- sampleRSS(sctx, d.cmd.Process.Pid, rep.Started, o.SampleEvery, o.Progress) }()
	records := filepath.Join(o.Dir, "requests.jsonl")
	var load benchOut
	err = o.bench(ctx, dev, "soak", &load, "--op", "mix", "--rate", strconv.FormatFloat(rep.Rate, 'f', 1, 64),
		"--concurrency", strconv.Itoa(o.Concurrency), "--duration", o.Duration.String(), "--warmup", "0s",
		"--record", records)
	rep.Duration, rep.LoadAfter = time.Since(rep.Started), loadavg()
	stopSampling()
	rep.RSS = <-samples
	rep.PecetdExit = d.stop()
	if err != nil {
		return rep, err
	}
	rep.Skipped = load.Skipped
	rep.Achieved = float64(load.Ops+load.Wrong+sum(load.Errors)) / load.DurationS

	// 3. The checks.
	recs, err := readFile(records, ReadRecords)
	if err != nil {
		return rep, err
	}
	windows, err := readFile(faultLog, ReadWindows)
	if err != nil {
		return rep, err
	}
	rep.Faults = map[string]int{}
	for _, w := range windows {
		rep.Faults[w.Kind]++
		rep.FaultTime += w.End.Sub(w.Start)
	}
	rep.Calls = CheckCalls(recs, windows)
	auditLog := filepath.Join(dev, "audit.log")
	// pecetd has stopped: the log ends in a checkpoint its audit key signed.
	out, verr := exec.CommandContext(ctx, o.Pecet, "audit", "verify", "--cert", filepath.Join(dev, "audit.pem"), auditLog).CombinedOutput()
	rep.AuditVerify = string(out)
	if ee := (*exec.ExitError)(nil); errors.As(verr, &ee) {
		rep.AuditVerifyExit = ee.ExitCode()
	} else if verr != nil {
		return rep, verr
	}
	events, err := ReadAudit(auditLog)
	if err != nil {
		return rep, err
	}
	rep.Audit = CheckAudit(recs, events)
	return rep, nil
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func readFile[T any](path string, read func(io.Reader) ([]T, error)) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// benchOut is the part of `pecet bench --json` the soak reads.
type benchOut struct {
	Ops       int64            `json:"ops"`
	OpsPerS   float64          `json:"ops_per_s"`
	DurationS float64          `json:"duration_s"`
	Errors    map[string]int64 `json:"errors"`
	Wrong     int64            `json:"wrong"`
	Skipped   int64            `json:"skipped"`
}

// bench runs `pecet bench --json` against the dev folder; its exit status
// is ignored (4 when a call failed, which a soak expects), its output is
// not.
func (o Options) bench(ctx context.Context, dev, name string, out *benchOut, args ...string) error {
	args = append([]string{"bench", "--dev-dir", dev, "--json", "--timeout", o.Timeout.String()}, args...)
	cmd := exec.CommandContext(ctx, o.Pecet, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := os.Create(filepath.Join(o.Dir, "bench-"+name+".err"))
	if err != nil {
		return err
	}
	defer stderr.Close()
	cmd.Stderr = stderr
	err = cmd.Run()
	if jerr := json.Unmarshal(stdout.Bytes(), out); jerr != nil {
		return fmt.Errorf("pecet %s: %w (output %q; stderr in %s)", strings.Join(args, " "), errors.Join(err, jerr), stdout.String(), stderr.Name())
	}
	return nil
}

type proc struct {
	cmd  *exec.Cmd
	done chan error
}

// start runs pecetd --dev on ephemeral ports and waits until /readyz is 200.
func start(ctx context.Context, o Options, dev, name string, env []string) (*proc, error) {
	addrFile := filepath.Join(dev, "pecetd.addr")
	_ = os.Remove(addrFile)
	logf, err := os.Create(filepath.Join(o.Dir, "pecetd-"+name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.Pecetd, "--dev", "--dev-dir", dev, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(3 * time.Minute) // the first start makes RSA keys
	for {
		var ep struct{ HTTP string }
		if b, err := os.ReadFile(addrFile); err == nil && json.Unmarshal(b, &ep) == nil && ep.HTTP != "" {
			if resp, err := http.Get("http://" + ep.HTTP + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p, nil
				}
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("pecetd (%s) exited during start-up: %w; log in %s", name, err, logf.Name())
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("pecetd (%s) not ready after 3 minutes; log in %s", name, logf.Name())
		}
	}
}

// stop sends SIGTERM and returns the exit status (-1 if it had to be
// killed after a minute).
func (p *proc) stop() int {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// sampleRSS reads VmRSS of pid every interval until ctx ends, and once
// more at the end.
func sampleRSS(ctx context.Context, pid int, t0 time.Time, every time.Duration, progress io.Writer) []Sample {
	var out []Sample
	take := func() {
		if kib, err := vmRSS(pid); err == nil {
			out = append(out, Sample{At: time.Since(t0), RSSKiB: kib})
			if len(out)%12 == 1 {
				fmt.Fprintf(progress, "soak: %5.0fs  pecetd RSS %d KiB  load %s\n", time.Since(t0).Seconds(), kib, loadavg())
			}
		}
	}
	take()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			take()
			return out
		case <-t.C:
			take()
		}
	}
}

// vmRSS is the resident set of a process in KiB (/proc/PID/status).
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Summary is the report as text.
func (r Report) Summary() string {
	var b strings.Builder
	c, a := r.Calls, r.Audit
	fmt.Fprintf(&b, "soak started %s, %v\n", r.Started.UTC().Format(time.RFC3339), r.Duration.Round(time.Second))
	fmt.Fprintf(&b, "rate          peak %.1f/s (closed loop, no faults); asked %.1f/s; started %.1f/s; %d starts skipped (all callers busy)\n", r.Peak, r.Rate, r.Achieved, r.Skipped)
	fmt.Fprintf(&b, "load average  %s at the start, %s at the end\n", r.LoadBefore, r.LoadAfter)
	fmt.Fprintf(&b, "calls         %d (+%d setup): %d ok, %d wrong answers, %d errors %v\n", c.Total, c.Setup, c.OK, c.Wrong, c.Total-c.OK-c.Wrong, c.Errors)
	fmt.Fprintf(&b, "by operation  %v\n", c.ByOp)
	fmt.Fprintf(&b, "errors        %d inside fault windows, %d outside, %d with a code no fault explains\n", c.InWindow, c.OutOfWindow, c.Unexpected)
	fmt.Fprintf(&b, "faults        %v, %v in windows (%.0f%% of the run)\n", r.Faults, r.FaultTime.Round(time.Second), 100*r.FaultTime.Seconds()/max(r.Duration.Seconds(), 1))
	fmt.Fprintf(&b, "audit verify  exit %d: %s\n", r.AuditVerifyExit, strings.TrimSpace(r.AuditVerify))
	fmt.Fprintf(&b, "audit lines   %d: begin %v, end %v, denied %d\n", a.Lines, a.Begins, a.Ends, a.Denied)
	fmt.Fprintf(&b, "audit match   %d answered audited calls, %d with exactly one begin and end agreeing with the answer; %d cut by the caller's deadline (%d of them audited); missing %d, duplicated %d, begin without end %d, end without begin %d, unknown inputs %d, outcome differs %d\n",
		a.Answered, a.Matched, a.Cut, a.CutAudited, a.Missing, a.Duplicated, a.Unfinished, a.Orphans, a.Unknown, a.OutcomeDiffers)
	fmt.Fprintf(&b, "pecetd RSS    first %d KiB, max %d KiB, last %d KiB (%d samples); slope over the second half %+.0f KiB/min\n", r.RSSFirst(), r.RSSMax(), r.RSSLast(), len(r.RSS), r.RSSSlope())
	fmt.Fprintf(&b, "pecetd exit   %d\n", r.PecetdExit)
	for _, e := range append(c.Examples, a.Examples...) {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(&b, "FAILED: %s\n", strings.Join(f, "; "))
	} else {
		fmt.Fprintln(&b, "PASSED: no wrong answer, no error outside a fault window, every answered call audited once, chain intact")
	}
	return b.String()
}
