package e2e

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// metricValue reads one series from pecetd's /metrics (-1 when absent).
func metricValue(t *testing.T, httpAddr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return -1
}

// waitMetric waits until a series reaches want.
func waitMetric(t *testing.T, d *daemon, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for metricValue(t, d.http, series) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v\n%s", series, metricValue(t, d.http, series), want, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReloadOnSIGHUP: a running pecetd --config re-reads its configuration
// on SIGHUP (and `pecetd reload`): a client gains a key alias and a new
// policy is listed without a restart; a broken config is refused, counted
// in pecet_config_reload_total{result="failure"} and the old one stays;
// a changed listen address is reported as needing a restart; each reload
// has an audit line naming what changed.
func TestReloadOnSIGHUP(t *testing.T) {
	dev := startDev(t)
	dir := dev.dir
	dev.stop(t)
	base, err := os.ReadFile(filepath.Join(dir, "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	granted := "keys: [client-sign, gateway-decrypt]   # gateway-decrypt: as an Encrypt recipient only"
	if !strings.Contains(string(base), granted) {
		t.Fatalf("the dev config changed: no %q", granted)
	}
	// The client starts without gateway-decrypt.
	write(t, dir, "pecet.yaml", strings.Replace(string(base), granted, "keys: [client-sign]", 1))
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startConfigReplica(t, dir, grpcAddr, httpAddr)
	name := strings.NewReplacer(":", "-", ".", "-").Replace(grpcAddr)
	cfgPath := filepath.Join(dir, "pecet-"+name+".yaml")
	auditPath := filepath.Join(dir, "audit-"+name+".log")
	running, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	c := dialDev(t, d, "client")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	encrypt := func() error {
		_, err := c.Envelope.Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("<PRIHL/>"), RecipientKeys: []string{"gateway-decrypt"}})
		return err
	}
	policies := func() []string {
		resp, err := c.Policy.ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range resp.GetPolicies() {
			names = append(names, p.GetName())
		}
		return names
	}
	if err := encrypt(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Encrypt to gateway-decrypt before the grant: %v, want PermissionDenied", err)
	}
	if slices.Contains(policies(), "dev2") {
		t.Fatal("dev2 listed before it is configured")
	}

	// 1. Grant the alias and add a policy; SIGHUP.
	next := strings.Replace(string(running), "keys: [client-sign]", "keys: [client-sign, gateway-decrypt]", 1)
	next = strings.Replace(next, "policies:\n", "policies:\n  dev2:\n    description: added by a reload\n    anchors: [ca.pem]\n    revocation: {mode: \"off\"}\n", 1)
	write(t, dir, filepath.Base(cfgPath), next)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="success"}`, 1)
	if err := encrypt(); err != nil {
		t.Fatalf("Encrypt to gateway-decrypt after the reload: %v", err)
	}
	if !slices.Contains(policies(), "dev2") {
		t.Fatalf("dev2 not listed after the reload: %v", policies())
	}

	// 2. A broken config, sent by `pecetd reload --pid`: refused, the
	// config in force stays, the process serves on.
	write(t, dir, filepath.Base(cfgPath), strings.Replace(next, "roles: [gateway]", "roles: [gatekeeper]", 1))
	pecetd, _ := binaries(t)
	out, err := exec.Command(pecetd, "reload", "--pid", strconv.Itoa(d.cmd.Process.Pid)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sent SIGHUP") {
		t.Fatalf("pecetd reload: %v\n%s", err, out)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="failure"}`, 1)
	if err := encrypt(); err != nil {
		t.Fatalf("Encrypt after a refused reload: %v", err)
	}
	if !slices.Contains(policies(), "dev2") {
		t.Fatal("dev2 gone after a refused reload")
	}
	if !strings.Contains(d.stderr.String(), `unknown role \"gatekeeper\"`) {
		t.Errorf("the log does not say why the reload was refused:\n%s", d.stderr)
	}

	// 3. Another audit file needs a restart: logged, ignored, and the
	// clients section still applies.
	moved := strings.Replace(next, "keys: [client-sign, gateway-decrypt]", "keys: [client-sign]", 1)
	moved = strings.Replace(moved, "file: audit-"+name+".log", "file: elsewhere.log", 1)
	write(t, dir, filepath.Base(cfgPath), moved)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="success"}`, 2)
	if err := encrypt(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Encrypt after the grant was withdrawn: %v, want PermissionDenied", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "elsewhere.log")); err == nil {
		t.Error("the audit file moved without a restart")
	}
	if !strings.Contains(d.stderr.String(), "need a restart") || !strings.Contains(d.stderr.String(), `"sections":"audit"`) {
		t.Errorf("the log does not name audit as needing a restart:\n%s", d.stderr)
	}

	// The audit log names what each reload changed, and stays a chain.
	d.stop(t)
	log, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	var reloads []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, `"phase":"reload"`) {
			reloads = append(reloads, line)
		}
	}
	if len(reloads) != 3 || !strings.Contains(reloads[0], "applied: clients,policies") ||
		!strings.Contains(reloads[1], "refused: invalid configuration") ||
		!strings.Contains(reloads[2], "applied: clients; needs restart: audit") {
		t.Fatalf("reload lines in the audit log:\n%s", strings.Join(reloads, "\n"))
	}
	if out, code := runPecet(t, d, "audit", "verify", auditPath); code != 0 {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
}

func runPecet(t *testing.T, d *daemon, args ...string) (string, int) {
	t.Helper()
	out, errs, code := d.run(t, args...)
	return out + errs, code
}
