package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// replica is a pecetd started with --config on the dev folder's token.
type replica struct {
	grpc string
	cmd  *exec.Cmd
	logs *lockedWriter
	done chan error
}

// startReplica runs pecetd --config on d's token with its own audit file
// (each process locks its audit file) and returns once it serves.
func startReplica(t *testing.T, d *daemon, name string) *replica {
	t.Helper()
	pecetd, _ := binaries(t)
	base, err := os.ReadFile(filepath.Join(d.dir, "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "file: audit.log", "file: audit-"+name+".log", 1)
	cfgPath := write(t, d.dir, "pecet-"+name+".yaml", cfg)
	r := &replica{logs: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	r.cmd = exec.Command(pecetd, "--config", cfgPath, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	r.cmd.Dir = d.dir // the config's relative paths are the dev folder's
	r.cmd.Env = append(cleanEnv(), "SOFTHSM2_CONF="+filepath.Join(d.dir, "softhsm2.conf"))
	pr, pw, _ := os.Pipe()
	r.cmd.Stderr = pw
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("replica %s: %v\n%s", name, err, r.logs)
			}
		case <-time.After(30 * time.Second):
			_ = r.cmd.Process.Kill()
		}
	})
	// pecetd logs its addresses as JSON: {"msg":"pecetd serving","grpc":…}.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = r.logs.Write([]byte(line + "\n"))
			var rec struct{ Msg, GRPC string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "pecetd serving" {
				addr <- rec.GRPC
			}
		}
	}()
	select {
	case r.grpc = <-addr:
	case err := <-r.done:
		t.Fatalf("replica %s exited: %v\n%s", name, err, r.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("replica %s not serving after 60s\n%s", name, r.logs)
	}
	return r
}

// TestReplicasShareToken: three pecetd processes on one SoftHSM token
// directory. A rotation, certification and primary switch made through the
// first is used by the other two within one second, without restarting
// them: nothing about keys lives anywhere but on the token.
func TestReplicasShareToken(t *testing.T) {
	d := startDev(t)
	r2, r3 := startReplica(t, d, "2"), startReplica(t, d, "3")
	dial := func(server string) pecetv1.SignServiceClient {
		cc, err := client.Dial(client.Options{Server: server, DevDir: d.dir, Role: "client"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc.Sign
	}
	sum := sha256.Sum256([]byte(filing))
	req := &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Digest{Digest: sum[:]}}
	others := map[string]pecetv1.SignServiceClient{"replica 2": dial(r2.grpc), "replica 3": dial(r3.grpc)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for name, sc := range others {
		if resp, err := sc.Sign(ctx, req); err != nil || resp.GetVersion() != 1 {
			t.Fatalf("%s before rotation: %v %v", name, resp, err)
		}
	}

	// Rotate through the first process with the CLI.
	work := t.TempDir()
	d.mustRun(t, 0, "keys", "rotate", "--alias", "client-sign")
	csr := filepath.Join(work, "v2.csr")
	d.mustRun(t, 0, "keys", "csr", "--alias", "client-sign", "--version", "2", "--subject", "CN=client-sign,C=CZ", "--out", csr)
	chain := certify(t, d, work, "v2", csr, signExt)
	d.mustRun(t, 0, "keys", "import-cert", "--alias", "client-sign", "--version", "2", "--in", chain)
	// Sign through both replicas right before the switch, so that their key
	// caches are fresh and still say version 1: the switch must get through
	// the cache (keystore's cache_ttl, 500 ms by default), not around it.
	for name, sc := range others {
		if resp, err := sc.Sign(ctx, req); err != nil || resp.GetVersion() != 1 {
			t.Fatalf("%s after certifying v2: %v %v", name, resp, err)
		}
	}
	d.mustRun(t, 0, "keys", "set-primary", "--alias", "client-sign", "--version", "2")
	switched := time.Now()

	for name, sc := range others {
		testtool.Eventually(t, time.Second-time.Since(switched), func() bool {
			resp, err := sc.Sign(ctx, req)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return resp.GetVersion() == 2
		}, "%s signing with version 2 within one second of set-primary", name)
		t.Logf("%s signs with version 2 after %v", name, time.Since(switched).Round(time.Millisecond))
	}
	// Each replica audited its own signatures in its own, intact chain.
	for _, name := range []string{"2", "3"} {
		d.verifyAudit(t, filepath.Join(d.dir, "audit-"+name+".log"))
	}
}
