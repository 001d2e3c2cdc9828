package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds pecetd and pecet once per test binary (with the race
// detector when the tests run with it, so the server is checked too).
func binaries(t *testing.T) (pecetd, pecet string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "pecet-e2e-bin")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", binDir + "/"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "../cmd/pecetd", "../cmd/pecet")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "pecetd"), filepath.Join(binDir, "pecet")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// daemon is a running pecetd --dev.
type daemon struct {
	dir    string
	grpc   string
	http   string
	cmd    *exec.Cmd
	stderr *lockedWriter
	pecet  string
	done   chan error
	// stopped is set once stop has run; tests and Cleanup may both call it.
	stopped bool
	// secrets are strings pecetd must never write (plaintext markers);
	// stop checks everything it wrote for them and for the PIN.
	secrets []string
}

// secret registers a string that must not appear in anything pecetd wrote
// (its log, the audit log): the plaintext of a filing, a birth number.
func (d *daemon) secret(s ...string) { d.secrets = append(d.secrets, s...) }

// startDev starts pecetd --dev in a fresh dev folder on ephemeral ports and
// waits until it is ready.
func startDev(t *testing.T) *daemon {
	t.Helper()
	return startDevIn(t, filepath.Join(t.TempDir(), "dev"))
}

// restartDev starts a new pecetd on a stopped one's dev folder.
func restartDev(t *testing.T, old *daemon) *daemon {
	t.Helper()
	return startDevIn(t, old.dir)
}

// startDevIn starts pecetd --dev on dir with extra environment variables.
func startDevIn(t *testing.T, dir string, env ...string) *daemon {
	t.Helper()
	return startDevFlags(t, dir, nil, env...)
}

// startDevFlags is startDevIn with extra pecetd flags.
func startDevFlags(t *testing.T, dir string, flags []string, env ...string) *daemon {
	t.Helper()
	requireTools(t)
	pecetd, pecet := binaries(t)
	d := &daemon{dir: dir, pecet: pecet, stderr: &lockedWriter{w: &bytes.Buffer{}}, done: make(chan error, 1)}
	d.cmd = exec.Command(pecetd, append([]string{"--dev", "--dev-dir", dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, flags...)...)
	d.cmd.Env = append(cleanEnv(), env...)
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	testtool.Eventually(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "pecetd.addr"))
		if err == nil {
			var ep struct{ GRPC, HTTP string }
			if json.Unmarshal(b, &ep) == nil && ep.GRPC != "" {
				d.grpc, d.http = ep.GRPC, ep.HTTP
				return true
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("pecetd exited early: %v\n%s", err, d.stderr)
		default:
		}
		return false
	}, "pecetd ready (its address file written)\n%s", d.stderr)
	return d
}

func (d *daemon) stop(t *testing.T) {
	if d.stopped {
		return
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("pecetd did not exit cleanly: %v\n%s", err, d.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("pecetd did not stop within 30s")
	}
	d.checkNoSecrets(t)
}

// checkNoSecrets greps everything pecetd wrote (stderr with its log; the
// audit log and any other *.log in the dev folder) for the token PIN and
// the registered plaintext markers.
func (d *daemon) checkNoSecrets(t *testing.T) {
	t.Helper()
	outputs := map[string]string{"stderr": d.stderr.String()}
	logs, _ := filepath.Glob(filepath.Join(d.dir, "*.log"))
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		outputs[filepath.Base(f)] = string(b)
	}
	type secret struct{ what, value string }
	var secrets []secret
	for i, v := range d.secrets {
		secrets = append(secrets, secret{fmt.Sprintf("plaintext marker #%d", i+1), v})
	}
	if pin, err := os.ReadFile(filepath.Join(d.dir, "pin")); err == nil && strings.TrimSpace(string(pin)) != "" {
		secrets = append(secrets, secret{"the token PIN", strings.TrimSpace(string(pin))})
	} else {
		t.Errorf("cannot read the dev PIN to look for it: %v", err)
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if s.value != "" && strings.Contains(out, s.value) {
				t.Errorf("pecetd's %s contains %s", name, s.what)
			}
		}
	}
}

// verifyAudit runs `pecet audit verify --cert DIR/audit.pem` on log files.
// A stopped pecetd's log must be OK; a running one's may end in lines the
// next checkpoint will vouch for (INCOMPLETE, exit 5), but its chain and
// every signature so far must hold.
func (d *daemon) verifyAudit(t *testing.T, files ...string) string {
	t.Helper()
	out, errs, code := d.run(t, append([]string{"audit", "verify", "--cert", filepath.Join(d.dir, "audit.pem")}, files...)...)
	live := !d.stopped && code == 5 && strings.Contains(out, "after the last signed checkpoint")
	if !live && (code != 0 || !strings.HasPrefix(out, "OK")) {
		t.Fatalf("audit verify %v: exit %d\nstdout: %s\nstderr: %s", files, code, out, errs)
	}
	return out
}

// run runs the pecet CLI against d and returns stdout, stderr and the exit code.
func (d *daemon) run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.pecet, args...)
	cmd.Env = append(cleanEnv(), "PECET_DEV_DIR="+d.dir)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("pecet %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (d *daemon) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.http + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// cleanEnv drops PECET_* and SOFTHSM2_CONF so that the dev folder decides.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PECET_") && !strings.HasPrefix(kv, "PECET_PKCS11_MODULE=") || strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"openssl", "go"} {
		testtool.Require(t, tool)
	}
}

func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
