package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
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

	// 4. Without the tsa section the TSA is gone at once: POST /tsa is 404
	// and Timestamp FailedPrecondition, without a restart.
	tsaStatus := func() int {
		resp, err := http.Post("http://"+d.http+"/tsa", "application/timestamp-query", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := tsaStatus(); code == http.StatusNotFound {
		t.Fatal("POST /tsa is 404 with a TSA configured")
	}
	// The top-level sections (http: has a tsa: of its own, the /tsa limits).
	i, j := strings.Index(moved, "\ntsa:")+1, strings.Index(moved, "\naudit:")+1
	if i <= 0 || j < i {
		t.Fatalf("no tsa section before audit in:\n%s", moved)
	}
	write(t, dir, filepath.Base(cfgPath), moved[:i]+moved[j:])
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="success"}`, 3)
	if code := tsaStatus(); code != http.StatusNotFound {
		t.Fatalf("POST /tsa after the TSA was removed: %d, want 404", code)
	}
	if _, err := c.Timestamp.Timestamp(ctx, &pecetv1.TimestampRequest{Digest: make([]byte, 32), Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Timestamp after the TSA was removed: %v, want FailedPrecondition", err)
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
	if len(reloads) != 4 || !strings.Contains(reloads[0], "applied: clients,policies") ||
		!strings.Contains(reloads[1], "refused: invalid configuration") ||
		!strings.Contains(reloads[2], "applied: clients; needs restart: audit") ||
		!strings.Contains(reloads[3], "applied: tsa; needs restart: audit") {
		t.Fatalf("reload lines in the audit log:\n%s", strings.Join(reloads, "\n"))
	}
	if out, code := runPecet(t, d, "audit", "verify", "--cert", filepath.Join(dir, "audit.pem"), auditPath); code != 0 {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
}

func runPecet(t *testing.T, d *daemon, args ...string) (string, int) {
	t.Helper()
	out, errs, code := d.run(t, args...)
	return out + errs, code
}

// czIssue is the real Czech list as issue seq (issued a day ago, next
// update in 90 days), re-signed with key: tests need issues the real
// signer never made.
func czIssue(t *testing.T, key *rsa.PrivateKey, seq int) []byte {
	t.Helper()
	data, err := os.ReadFile(testtool.Vectors(t, "trusted-lists", "CZ.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for re, with := range map[string]string{
		`<TSLSequenceNumber>[^<]*<`:         fmt.Sprintf("<TSLSequenceNumber>%d<", seq),
		`<ListIssueDateTime>[^<]*<`:         "<ListIssueDateTime>" + time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339) + "<",
		`(<NextUpdate>\s*<dateTime>)[^<]*<`: "${1}" + time.Now().AddDate(0, 0, 90).UTC().Format(time.RFC3339) + "<",
	} {
		data = regexp.MustCompile(re).ReplaceAll(data, []byte(with))
	}
	out, err := policy.ResignTrustedList(data, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReloadTrustedList: `pecet policy show` names the trusted list in
// force; SIGHUP puts a newer issue in force and refuses an older one
// (rollback), which the metrics show.
func TestReloadTrustedList(t *testing.T) {
	dev := startDev(t)
	dir := dev.dir
	dev.stop(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test TL signer"},
		NotBefore: time.Now().AddDate(-1, 0, 0), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "tl-signer.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	write(t, dir, "CZ.xml", string(czIssue(t, key, 78)))
	base, err := os.ReadFile(filepath.Join(dir, "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, "pecet.yaml", strings.Replace(string(base), "policies:\n",
		"policies:\n  cz:\n    description: the Czech list, re-signed\n    trusted_list: {file: CZ.xml, signer: tl-signer.pem}\n    revocation: {mode: \"off\"}\n", 1))
	d := startConfigReplica(t, dir, freeAddr(t), freeAddr(t))
	show := func(want string) {
		t.Helper()
		out, errs, code := d.run(t, "policy", "show", "cz", "--server", d.grpc)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("pecet policy show cz: exit %d, output lacks %q:\n%s%s", code, want, out, errs)
		}
	}
	issued := time.Now().Add(-24 * time.Hour).UTC().Format("2006-01-02T")
	show("trusted list: CZ, sequence 78, issued " + issued)

	write(t, dir, "CZ.xml", string(czIssue(t, key, 79)))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="success"}`, 1)
	show("sequence 79")

	write(t, dir, "CZ.xml", string(czIssue(t, key, 77)))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, d, `pecet_trusted_list_loads_total{policy="cz",result="refused"}`, 1)
	show("sequence 79")
	if v := metricValue(t, d.http, `pecet_trusted_list_sequence_number{policy="cz"}`); v != 79 {
		t.Fatalf("pecet_trusted_list_sequence_number = %v", v)
	}
	if v := metricValue(t, d.http, `pecet_trusted_list_age_seconds{policy="cz"}`); v < 23*3600 || v > 25*3600 {
		t.Fatalf("pecet_trusted_list_age_seconds = %v, want about a day", v)
	}
	if !strings.Contains(d.stderr.String(), "trusted list refused: the list in force stays") {
		t.Errorf("the log does not say the older list was refused:\n%s", d.stderr)
	}
}

// TestReloadDev: `pecetd reload --dev-dir` finds pecetd --dev through the
// pid in DIR/pecetd.addr; an unchanged config reloads as "nothing changed".
func TestReloadDev(t *testing.T) {
	d := startDev(t)
	pecetd, _ := binaries(t)
	cmd := exec.Command(pecetd, "reload", "--dev-dir", d.dir)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "pecetd.addr") {
		t.Fatalf("pecetd reload --dev-dir: %v\n%s", err, out)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="success"}`, 1)
	d.stop(t)
	b, err := os.ReadFile(filepath.Join(d.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"phase":"reload","caller":"pecetd","rpc":"SIGHUP","outcome":"applied: nothing changed"`) {
		t.Fatalf("no reload line in the dev audit log:\n%s", b)
	}
}

// TestSystemdExecReload: `systemctl reload pecetd` runs the unit's
// ExecReload; run here as systemd would (the binary where the test built
// it, $MAINPID the running pecetd), it makes pecetd reload.
func TestSystemdExecReload(t *testing.T) {
	b, err := os.ReadFile("../deploy/systemd/pecetd.service")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ExecReload="); ok {
			line = v
		}
	}
	if line == "" {
		t.Fatal("deploy/systemd/pecetd.service has no ExecReload: systemctl reload pecetd would fail")
	}
	d := startDev(t)
	pecetd, _ := binaries(t)
	args := strings.Fields(line)
	for i, a := range args {
		switch a {
		case "/usr/local/bin/pecetd":
			args[i] = pecetd
		case "$MAINPID", "${MAINPID}":
			args[i] = strconv.Itoa(d.cmd.Process.Pid)
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %v: %v\n%s", args, err, out)
	}
	waitMetric(t, d, `pecet_config_reload_total{result="success"}`, 1)
}
