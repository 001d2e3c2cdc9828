package daemon

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/tsa"
)

// TestBuildEngineClock: the engine pecetd builds judges a chain at the
// daemon's clock (Options.Now), and its fetcher judges CRL and OCSP
// freshness by the same clock: moved past the leaf's expiry, the leaf is
// expired; at the wall time it is valid.
func TestBuildEngineClock(t *testing.T) {
	wall := time.Now()
	ca, anchors := writeCA(t, "clock test CA", wall)
	_, leaf, err := ca.IssueKey("clock test leaf", devca.CMSSign, wall)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{DefaultPolicy: "p", Policies: map[string]config.Policy{"p": {Anchors: []string{anchors}}}}
	for _, tc := range []struct {
		name   string
		at     time.Time
		status policy.Status
	}{
		{"now", wall, policy.Valid},
		{"after the leaf expired", leaf.NotAfter.Add(time.Hour), policy.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := func() time.Time { return tc.at }
			e, err := buildEngine(cfg, nil, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			v := e.Validate(policy.Request{Leaf: leaf, Purpose: policy.PurposeSigning})
			if !v.ValidatedAt.Equal(tc.at) || v.Status != tc.status {
				t.Fatalf("judged at %v with %v %v, want at %v with %v", v.ValidatedAt, v.Status, v.Reasons, tc.at, tc.status)
			}
			if e.Fetcher == nil || e.Fetcher.Now == nil || !e.Fetcher.Now().Equal(tc.at) {
				t.Fatal("the fetcher does not use the daemon's clock")
			}
		})
	}
}

// TestRunClock: pecetd --dev run with its clock three years ahead issues
// its dev certificates, time-stamps and audit lines at that time, not at
// the machine's: every outcome that depends on time follows Options.Now.
//
// A process loads SoftHSM once, for one dev folder (devmode.Prepare), and
// TestRunLifecycle has its own: this test runs in a child process.
func TestRunClock(t *testing.T) {
	testtool.Require(t, "softhsm2-util")
	if os.Getenv(runClockChild) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRunClock$", "-test.count=1")
		cmd.Env = append(os.Environ(), runClockChild+"=1")
		if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("PASS")) {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	dir := t.TempDir()
	fake := time.Now().AddDate(3, 0, 0).Truncate(time.Second).UTC()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	probe := &servingProbe{w: &logs, path: filepath.Join(dir, AddrFile)}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Dev: true, DevDir: dir, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Now: func() time.Time { return fake }}, slog.New(slog.NewTextHandler(probe, nil)))
	}()
	testtool.Eventually(t, time.Minute, func() bool { return inOrder(logs.messages(), []string{"pecetd serving"}) }, "pecetd does not serve:\n", &logs)
	// Whoever waits for "pecetd serving" (or systemd's READY) reads the
	// endpoints file at once: it must be there by then.
	if !probe.had.Load() {
		t.Fatal("the endpoints file was not written when pecetd said it serves")
	}
	b, err := os.ReadFile(filepath.Join(dir, AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	var ep Endpoints
	if err := json.Unmarshal(b, &ep); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("clock"))
	req, err := tsa.NewRequest(sum[:], crypto.SHA256, true, true)
	if err != nil {
		t.Fatal(err)
	}
	der, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+ep.HTTP+"/tsa", "application/timestamp-query", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := tsa.ParseResponse(body)
	if err != nil || r.Token == nil {
		t.Fatalf("TSA answer %v: %v %v", resp.Status, err, r)
	}
	info, err := tsa.ParseToken(r.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !info.GenTime.Equal(fake) {
		t.Errorf("genTime %v, want the injected %v", info.GenTime, fake)
	}
	ca, err := pki.ReadCertificates(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if nb := ca[0].NotBefore; nb.Before(fake.Add(-48*time.Hour)) || nb.After(fake) {
		t.Errorf("dev CA valid from %v, want about the injected %v", nb, fake)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"` + fake.Format("2006-01-02T15:04:05"); !strings.HasPrefix(string(log), want) {
		t.Errorf("audit log starts %.60q, want %q", log, want)
	}
}

// runClockChild marks the child process TestRunClock runs its daemon in.
const runClockChild = "PECET_TEST_RUN_CLOCK_CHILD"

// servingProbe passes log lines on and, at the "pecetd serving" line,
// notes whether the file at path exists.
type servingProbe struct {
	w    io.Writer
	path string
	had  atomic.Bool
}

func (p *servingProbe) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(`msg="pecetd serving"`)) {
		_, err := os.Stat(p.path)
		p.had.Store(err == nil)
	}
	return p.w.Write(b)
}
