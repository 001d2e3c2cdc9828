package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/perf/soak"
)

// TestReleaseBinaryHasNoFaultHook: the pecetd every other test runs (a
// plain `go build`) carries none of the fault hook that -tags faultinject
// adds (internal/daemon/faultinject.go): neither its environment variables
// nor its warning, nor any code of internal/faultinject (no release
// package imports it: internal/archtest), nor the keystore.Faults it
// replaced.
func TestReleaseBinaryHasNoFaultHook(t *testing.T) {
	pecetd, _ := binaries(t)
	b, err := os.ReadFile(pecetd)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"PECET_FAULTS", "PECET_FAULT_LOG", "FAULT INJECTION BUILD"} {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("the release pecetd contains %q", s)
		}
	}
	f, err := elf.Open(pecetd)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil || len(syms) == 0 {
		t.Fatalf("the symbols of pecetd: %d, %v", len(syms), err)
	}
	for _, s := range syms {
		if strings.Contains(s.Name, "pecet/internal/faultinject.") || strings.Contains(s.Name, "keystore.(*Faults)") || strings.Contains(s.Name, "keystore.OpenWithFaults") {
			t.Errorf("the release pecetd links the fault hook: %s", s.Name)
		}
	}
}

// benchMixAudited runs `pecet bench --op mix` open loop for a second
// with --record and sets the records beside pecetd's audit log: no wrong
// answer, no error, every operation of the mix, and every audited call
// (sign, decrypt, timestamp) with exactly one begin and one end line. The
// first subtest of TestBench, so that the audit log holds only its calls.
func benchMixAudited(t *testing.T, d *daemon) {
	recPath := filepath.Join(t.TempDir(), "requests.jsonl")
	out, errs, code := d.run(t, "bench", "--op", "mix", "--rate", "50", "--duration", "1s", "--warmup", "0s",
		"--concurrency", "8", "--record", recPath, "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	var r struct {
		Ops    int64            `json:"ops"`
		Errors map[string]int64 `json:"errors"`
		Wrong  *int64           `json:"wrong"`
		Rate   float64          `json:"rate"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Ops < 10 || len(r.Errors) != 0 || r.Wrong == nil || *r.Wrong != 0 || r.Rate != 50 {
		t.Fatalf("result %s", out)
	}
	f, err := os.Open(recPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := soak.ReadRecords(f)
	if err != nil {
		t.Fatal(err)
	}
	calls := soak.CheckCalls(recs, nil)
	if int64(calls.Total) != r.Ops || calls.OK != calls.Total || calls.Setup != 2 {
		t.Fatalf("records: %+v; bench: %s", calls, out)
	}
	for _, op := range []string{"sign", "verify", "encrypt", "decrypt", "timestamp"} {
		if calls.ByOp[op] == 0 {
			t.Errorf("no %s in the mix: %v", op, calls.ByOp)
		}
	}
	events, err := soak.ReadAudit(filepath.Join(d.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	m := soak.CheckAudit(recs, events)
	if m.Answered == 0 || m.Matched != m.Answered || m.Missing+m.Duplicated+m.Unfinished+m.Orphans+m.OutcomeDiffers+m.Unknown > 0 {
		t.Fatalf("audit against the records: %+v", m)
	}
}

// TestSoakShort is the soak of docs/reliability.md, short: a pecetd built
// with -tags faultinject, the mix at 80% of its peak with a fault every 3 s,
// every invariant checked (soak.Report.Failures). It takes a minute or
// more and loads the machine, so it runs only when PECET_SOAK_E2E gives
// its duration (PECET_SOAK_E2E=30s); `go run ./scripts/perf soak` is the full
// one.
func TestSoakShort(t *testing.T) {
	v := os.Getenv("PECET_SOAK_E2E")
	if v == "" {
		t.Skip("set PECET_SOAK_E2E=30s to run the short soak against a real pecetd")
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("PECET_SOAK_E2E: %v", err)
	}
	requireTools(t)
	_, pecet := binaries(t)
	dir := t.TempDir()
	pecetd := filepath.Join(dir, "pecetd-faultinject")
	args := []string{"build", "-tags", "faultinject", "-o", pecetd}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, "../cmd/pecetd")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+5*time.Minute)
	defer cancel()
	rep, err := soak.Run(ctx, soak.Options{Pecetd: pecetd, Pecet: pecet, Dir: filepath.Join(dir, "soak"),
		Duration: dur, PeakDuration: 5 * time.Second, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.Summary())
	for _, f := range rep.Failures() {
		t.Error(f)
	}
	if rep.Audit.Answered == 0 || len(rep.RSS) < 2 {
		t.Errorf("nothing audited (%d) or no RSS series (%d samples)", rep.Audit.Answered, len(rep.RSS))
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
