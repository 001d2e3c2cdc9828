package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// freeAddr finds a loopback port that is free now, for a replica that must
// come back on the same address after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startConfigReplica starts `pecetd --config` with a copy of the dev
// folder's pecet.yaml on its token (SOFTHSM2_CONF points at it) and waits
// for /readyz. Each replica gets its own audit file: a pecetd locks its
// audit log, and one log per process is how replicas are run.
func startConfigReplica(t *testing.T, dir, grpcAddr, httpAddr string) *daemon {
	t.Helper()
	pecetd, pecet := binaries(t)
	base, err := os.ReadFile(filepath.Join(dir, "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer(":", "-", ".", "-").Replace(grpcAddr)
	cfg := strings.Replace(string(base), "file: audit.log", "file: audit-"+name+".log", 1)
	cfgPath := write(t, dir, "pecet-"+name+".yaml", cfg)
	d := &daemon{dir: dir, pecet: pecet, grpc: grpcAddr, http: httpAddr, stderr: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	d.cmd = exec.Command(pecetd, "--config", cfgPath, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
	d.cmd.Env = append(cleanEnv(), "SOFTHSM2_CONF="+filepath.Join(dir, "softhsm2.conf"))
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	testtool.Eventually(t, 30*time.Second, func() bool {
		if resp, err := http.Get("http://" + httpAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("replica exited early: %v\n%s", err, d.stderr)
		default:
		}
		return false
	}, "replica ready\n%s", d.stderr)
	return d
}

// okCalls sums pecet_grpc_calls_total{code="OK"} on a replica's /metrics.
func okCalls(t *testing.T, httpAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "pecet_grpc_calls_total{") && strings.Contains(line, `code="OK"`) && strings.Contains(line, "pecet.v1.") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

// TestReplicas: three pecetd processes share one SoftHSM token; a client
// with gRPC's round_robin balancer over the three serves a mixed load of
// Sign, Verify and ListKeys without a single error while one replica is
// stopped gracefully (SIGTERM) and started again, as in a rolling upgrade.
func TestReplicas(t *testing.T) {
	binaries(t) // the build is not part of the time measured below
	t0 := time.Now()
	first := startDev(t)
	dir := first.dir
	replicas := []*daemon{first}
	for range 2 {
		replicas = append(replicas, startConfigReplica(t, dir, freeAddr(t), freeAddr(t)))
	}
	var addrs []string
	for _, r := range replicas {
		addrs = append(addrs, r.grpc)
	}
	conn, err := client.DialAll(client.Options{DevDir: dir, Role: "client"}, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	data := []byte(filing)
	sig, err := conn.Sign.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil {
		t.Fatal(err)
	}

	var calls, failures atomic.Int64
	var mu sync.Mutex
	var firstErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch i % 3 {
				case 0:
					_, err = conn.Sign.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
				case 1:
					var r *pecetv1.VerifyResponse
					r, err = conn.Sign.Verify(ctx, &pecetv1.VerifyRequest{Signature: sig.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}})
					if err == nil && r.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
						t.Errorf("verify: %v", r.GetVerdict())
					}
				case 2:
					_, err = conn.Keys.ListKeys(ctx, &pecetv1.ListKeysRequest{})
				}
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				close(stop)
				wg.Wait()
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, r := range replicas {
		waitFor("every replica to serve calls", func() bool { return okCalls(t, r.http) > 5 })
	}

	// Stop the third replica gracefully and bring it back on its addresses.
	victim := replicas[2]
	if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-victim.done:
		if err != nil {
			t.Fatalf("replica did not exit cleanly on SIGTERM: %v\n%s", err, victim.stderr)
		}
	case <-ctx.Done():
		t.Fatal("replica did not stop")
	}
	victim.stopped = true
	during := calls.Load()
	waitFor("calls while a replica is down", func() bool { return calls.Load() > during+30 })
	back := startConfigReplica(t, dir, victim.grpc, victim.http)
	waitFor("the restarted replica to serve again", func() bool { return okCalls(t, back.http) > 5 })
	close(stop)
	wg.Wait()

	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed; first: %v", n, calls.Load(), firstErr)
	}
	t.Logf("%d calls, no errors, across a replica restart; %v after the build", calls.Load(), time.Since(t0).Round(time.Millisecond))
}
