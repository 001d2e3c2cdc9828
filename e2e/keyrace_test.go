package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
)

// TestReplicasRaceOnOneKey: three pecetd processes share one SoftHSM token;
// officers on all three rotate client-sign and switch its primary between
// two certified versions as fast as they can for a few seconds, while
// ListKeys runs on every replica. No call may fail except with Aborted (a
// change that kept losing races, audited), ListKeys never fails, and
// afterwards every replica shows the same key and signs with its primary.
// docs/security.md "Replicas changing one key".
func TestReplicasRaceOnOneKey(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	d.mustRun(t, 0, "keys", "rotate", "--alias", "client-sign")
	csr := filepath.Join(work, "v2.csr")
	d.mustRun(t, 0, "keys", "csr", "--alias", "client-sign", "--version", "2", "--subject", "CN=client-sign,C=CZ", "--out", csr)
	d.mustRun(t, 0, "keys", "import-cert", "--alias", "client-sign", "--version", "2", "--in", certify(t, d, work, "v2", csr, signExt))
	r2, r3 := startReplica(t, d, "2"), startReplica(t, d, "3")
	servers := []string{d.grpc, r2.grpc, r3.grpc}
	defer func() {
		if t.Failed() {
			for _, l := range strings.Split(d.stderr.String()+r2.logs.String()+r3.logs.String(), "\n") {
				if strings.Contains(l, "race") || strings.Contains(l, "level=WARN") || strings.Contains(l, `"WARN"`) || strings.Contains(l, "ERROR") {
					t.Log(l)
				}
			}
		}
	}()

	dial := func(server, role string) *client.Conn {
		cc, err := client.Dial(client.Options{Server: server, DevDir: d.dir, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const racing = 3 * time.Second
	stop := time.Now().Add(racing)
	var (
		mu      sync.Mutex
		counts  = map[string]int{}
		bad     []string
		wg      sync.WaitGroup
		officer = make([]pecetv1.KeyServiceClient, len(servers))
	)
	note := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch status.Code(err) {
		case codes.OK:
			counts[what+" ok"]++
		case codes.Aborted:
			counts[what+" aborted"]++
		default:
			bad = append(bad, fmt.Sprintf("%s: %v", what, err))
		}
	}
	for i, server := range servers {
		officer[i] = dial(server, "officer").Keys
		ks := officer[i]
		wg.Add(3)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				_, err := ks.RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: "client-sign"})
				note("rotate", err)
				time.Sleep(30 * time.Millisecond)
			}
		}()
		go func() {
			defer wg.Done()
			for n := i; time.Now().Before(stop); n++ {
				_, err := ks.SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: "client-sign", Version: uint32(1 + n%2)})
				note("set-primary", err)
			}
		}()
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				l, err := ks.ListKeys(ctx, &pecetv1.ListKeysRequest{})
				if err == nil {
					for _, k := range l.GetKeys() {
						if k.GetProblem() != "" {
							err = fmt.Errorf("alias %s: %s", k.GetAlias(), k.GetProblem())
						}
					}
				}
				note("list", err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d s of racing: %v", int(racing.Seconds()), counts)
	for _, b := range bad {
		t.Error(b)
	}
	if counts["rotate ok"] == 0 || counts["set-primary ok"] == 0 {
		t.Fatalf("no change got through: %v", counts)
	}

	// Every replica reads the same key once its cache (500 ms) has expired
	// and the replicas' last nudges (1.5 s after their last change) have
	// brought SoftHSM's per-process object index up to date, and signs with
	// the primary it shows.
	time.Sleep(2 * time.Second)
	var first *pecetv1.Key
	sum := sha256.Sum256([]byte(filing))
	for i, server := range servers {
		k, err := officer[i].GetKey(ctx, &pecetv1.GetKeyRequest{Alias: "client-sign"})
		if err != nil {
			t.Fatalf("replica %d: %v", i+1, err)
		}
		k.Warning = ""
		if first == nil {
			first = k
			want := 2 + counts["rotate ok"]
			if len(k.GetVersions()) != want {
				t.Errorf("%d versions, want 2 + %d successful rotations", len(k.GetVersions()), counts["rotate ok"])
			}
			for j, v := range k.GetVersions() {
				if v.GetVersion() != uint32(j+1) || v.GetProblem() != "" || (j >= 2 && v.GetState() != pecetv1.KeyState_PENDING_CERTIFICATE) {
					t.Errorf("version %d: %v", j+1, v)
				}
			}
		} else if !proto.Equal(k, first) {
			t.Errorf("replica %d disagrees:\n%v\nreplica 1:\n%v", i+1, k, first)
		}
		resp, err := dial(server, "client").Sign.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Digest{Digest: sum[:]}})
		if err != nil || resp.GetVersion() != first.GetPrimaryVersion() {
			t.Errorf("replica %d signs: %v %v (primary %d)", i+1, resp.GetVersion(), err, first.GetPrimaryVersion())
		}
	}
}
