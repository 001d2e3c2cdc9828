package e2e

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
)

// runPecetd runs pecetd to completion (it is expected to fail at start-up).
func runPecetd(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	pecetd, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pecetd, args...)
	cmd.Env = append(cleanEnv(), env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("pecetd %v did not exit: %s", args, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return errb.String(), code
}

// TestStartupFailures: pecetd refuses to start, exit 1, naming what is wrong.
func TestStartupFailures(t *testing.T) {
	d := startDev(t)
	d.stop(t)
	conf := filepath.Join(d.dir, "softhsm2.conf")
	base, err := os.ReadFile(filepath.Join(d.dir, "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	wrongPIN := write(t, work, "wrong-pin", "000000\n")
	if err := os.Chmod(wrongPIN, 0o600); err != nil { // a PIN file others may read is refused
		t.Fatal(err)
	}
	openPIN := write(t, work, "open-pin", "000000\n") // 0644
	abs := func(s string) string {
		for _, f := range []string{"server.pem", "server-key.pem", "ca.pem"} {
			s = strings.ReplaceAll(s, " "+f, " "+filepath.Join(d.dir, f))
		}
		s = strings.ReplaceAll(s, "anchors: [ca.pem]", "anchors: ["+filepath.Join(d.dir, "ca.pem")+"]")
		s = strings.ReplaceAll(s, "file: audit.log", "file: "+filepath.Join(d.dir, "audit.log"))
		return strings.ReplaceAll(s, "pin_file: pin", "pin_file: "+filepath.Join(d.dir, "pin"))
	}
	good := abs(string(base))
	// Two client CAs (the dev CA and another) and clients without issuer
	// pins: any of them could issue the dev clients' names.
	other, err := devca.NewCA("other clients CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	devCA, _ := os.ReadFile(filepath.Join(d.dir, "ca.pem"))
	twoCAs := write(t, work, "two-cas.pem", string(devCA)+string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Cert.Raw})))
	notCRL := write(t, work, "clients.crl", "not a CRL\n")
	cases := []struct {
		name, yaml, want string
		code             int
	}{
		// Exit 3: a supervisor must not restart into another wrong login.
		{"wrong PIN", strings.ReplaceAll(good, filepath.Join(d.dir, "pin"), wrongPIN), "PIN incorrect", 3},
		{"missing module", regexpReplaceModule(good, "/nonexistent/libpkcs11.so"), "module", 1},
		{"unknown token", strings.ReplaceAll(good, "label: pecet-dev", "label: no-such-token"), "token not found", 1},
		{"unknown token serial", strings.ReplaceAll(good, "label: pecet-dev", `uri: "pkcs11:token=pecet-dev;serial=0000"`), "token not found", 1},
		{"unknown config key", good + "colour: blue\n", "colour", 1},
		{"TSA key of another purpose", strings.Replace(good, "  key: tsa\n", "  key: client-sign\n", 1), `TSA key "client-sign"`, 1},
		{"TSA ordering", strings.Replace(good, "ordering: false", "ordering: true", 1), "tsa.ordering", 1},
		{"no audit file", strings.ReplaceAll(good, "file: "+filepath.Join(d.dir, "audit.log"), "file: \"\""), "audit.file is required", 1},
		{"audit file not writable", strings.ReplaceAll(good, "file: "+filepath.Join(d.dir, "audit.log"), "file: "+filepath.Join(work, "no-such-dir", "audit.log")), "audit log", 1},
		{"missing PIN file", strings.ReplaceAll(good, filepath.Join(d.dir, "pin"), filepath.Join(work, "absent")), "PIN file", 1},
		{"PIN file readable by others", strings.ReplaceAll(good, filepath.Join(d.dir, "pin"), openPIN), "mode 0644", 1},
		{"two client CAs, no issuer pins", strings.Replace(good, "client_ca: "+filepath.Join(d.dir, "ca.pem"), "client_ca: "+twoCAs, 1), "holds 2 certificates", 1},
		{"client CRL not a CRL", strings.Replace(good, "client_ca: "+filepath.Join(d.dir, "ca.pem"), "client_ca: "+filepath.Join(d.dir, "ca.pem")+"\n    client_crl: "+notCRL, 1), "grpc.tls.client_crl", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := write(t, work, "pecet.yaml", c.yaml)
			errs, code := runPecetd(t, []string{"SOFTHSM2_CONF=" + conf}, "--config", cfg, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("want exit %d naming %q, got exit %d:\n%s", c.code, c.want, code, errs)
			}
		})
	}
	if _, code := runPecetd(t, nil, "--dev", "--config", "x"); code != 2 {
		t.Errorf("--dev with --config: want usage exit 2, got %d", code)
	}
	// --dev on every interface: refused without --dev-allow-remote.
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		errs, code := runPecetd(t, nil, "--dev", "--dev-dir", d.dir, "--grpc-addr", addr, "--http-addr", "127.0.0.1:0")
		if code != 1 || !strings.Contains(errs, "--dev-allow-remote") {
			t.Errorf("--dev --grpc-addr %s: want exit 1 naming --dev-allow-remote, got exit %d:\n%s", addr, code, errs)
		}
	}
}

func regexpReplaceModule(s, module string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "module:") {
			line = "  module: " + module
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// TestDevRestartReusesFolder: a second start finds the same token and keys.
func TestDevRestartReusesFolder(t *testing.T) {
	d := startDev(t)
	first, _, code := d.run(t, "keys", "show", "--alias", "client-sign", "--json")
	if code != 0 {
		t.Fatalf("keys show: exit %d", code)
	}
	d.stop(t)
	// A folder loosened since (copied, unpacked, a loose umask) is made
	// private again by the next start.
	loose := map[string]os.FileMode{d.dir: 0o755, filepath.Join(d.dir, "pin"): 0o644, filepath.Join(d.dir, "ca-key.pem"): 0o644, filepath.Join(d.dir, "tokens"): 0o755}
	for p, m := range loose {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	d2 := restartDev(t, d)
	for p, m := range loose {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := m &^ 0o077; st.Mode().Perm() != want {
			t.Errorf("%s: mode %04o after restart, want %04o", p, st.Mode().Perm(), want)
		}
	}
	second, _, code := d2.run(t, "keys", "show", "--alias", "client-sign", "--json")
	if code != 0 {
		t.Fatalf("keys show after restart: exit %d", code)
	}
	if first != second {
		t.Fatalf("client-sign changed across restarts:\n%s\n%s", first, second)
	}
}
