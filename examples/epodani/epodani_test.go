package epodani

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/examples/epodani/govtalk"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// build compiles pecetd, the client and the gateway into dir.
func build(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../../cmd/pecetd", "./client", "./gateway").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PECET_") || strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// startDev runs pecetd --dev on ephemeral ports until the test ends.
func startDev(t *testing.T, bin, dev string) {
	t.Helper()
	testtool.Require(t, "softhsm2-util") // SoftHSM2: skipped locally without it, failed in CI
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(bin, "pecetd"), "--dev", "--dev-dir", dev, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	cmd.Env, cmd.Stderr = env(), &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	testtool.Eventually(t, 60*time.Second, func() bool {
		if b, err := os.ReadFile(filepath.Join(dev, "pecetd.addr")); err == nil {
			var ep struct{ GRPC string }
			if json.Unmarshal(b, &ep) == nil && ep.GRPC != "" {
				return true
			}
		}
		select {
		case err := <-done:
			t.Fatalf("pecetd exited: %v\n%s", err, stderr.String())
		default:
		}
		return false
	}, "pecetd ready\n%s", &stderr)
}

func run(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestFiling runs the example end to end: client → filing.xml → gateway.
func TestFiling(t *testing.T) {
	bin, work := t.TempDir(), t.TempDir()
	build(t, bin)
	dev := filepath.Join(work, "dev")
	startDev(t, bin, dev)
	filing := filepath.Join(work, "filing.xml")
	client, gateway := filepath.Join(bin, "client"), filepath.Join(bin, "gateway")

	out, code := run(t, client, "--dev-dir", dev, "--in", "testdata/prihl.xml", "--out", filing)
	if code != 0 {
		t.Fatalf("client: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(filing)
	for _, want := range []string{"<Class>CSSZ_PRIHL</Class>", "<Qualifier>request</Qualifier>", "<Function>submit</Function>",
		`<Message version="1.1">`, `encrypted="yes"`, `contentEncoding="gzip"`, "<Signature>MII"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("filing lacks %s", want)
		}
	}
	if bytes.Contains(b, []byte("8553120103")) || bytes.Contains(b, []byte("Bernová")) {
		t.Fatal("the filing carries the sentence in clear")
	}

	out, code = run(t, gateway, "--dev-dir", dev, "--in", filing)
	if code != 0 {
		t.Fatalf("gateway: exit %d\n%s", code, out)
	}
	for _, want := range []string{"decrypted with gateway-decrypt version 1", "signature: VALID", "CN=client-sign", "employees: 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("gateway output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"8553120103", "7901150103", "Bernová", "Petr"} {
		if strings.Contains(out, secret) {
			t.Errorf("gateway printed personal data %q", secret)
		}
	}

	t.Run("tampered body", func(t *testing.T) {
		f, err := govtalk.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		f.Body[len(f.Body)-20] ^= 1
		bad, _ := govtalk.Marshal(*f)
		p := filepath.Join(t.TempDir(), "bad.xml")
		os.WriteFile(p, bad, 0o600)
		out, code := run(t, gateway, "--dev-dir", dev, "--in", p)
		if code != 2 || (!strings.Contains(out, "decryption failed") && !strings.Contains(out, "not gzip")) {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	// A filing whose attached signature covers another sentence than the
	// body: the gateway passes the body as the content, and pecet must
	// compare it with the embedded one rather than verify the embedded one
	// alone (docs/security.md, "Attached signatures and the content the
	// caller supplies").
	t.Run("attached signature over another sentence", func(t *testing.T) {
		dir := t.TempDir()
		prihl, err := os.ReadFile("testdata/prihl.xml")
		if err != nil {
			t.Fatal(err)
		}
		other := writeFile(t, dir, "other.xml", bytes.Replace(prihl, []byte("8553120103"), []byte("8553120104"), 1))
		att, attOther := filepath.Join(dir, "att.xml"), filepath.Join(dir, "att-other.xml")
		for _, c := range [][2]string{{"testdata/prihl.xml", att}, {other, attOther}} {
			if out, code := run(t, client, "--dev-dir", dev, "--attached", "--in", c[0], "--out", c[1]); code != 0 {
				t.Fatalf("client --attached: exit %d\n%s", code, out)
			}
		}
		out, code := run(t, gateway, "--dev-dir", dev, "--in", att)
		if code != 0 || !strings.Contains(out, "signature: VALID") || !strings.Contains(out, "content: embedded, compared with the sentence") {
			t.Fatalf("attached filing: exit %d\n%s", code, out)
		}
		good, _ := os.ReadFile(att)
		bad, _ := os.ReadFile(attOther)
		fg, err := govtalk.Parse(bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := govtalk.Parse(bytes.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		fg.Signature = fb.Signature // signed over the other sentence
		spliced, _ := govtalk.Marshal(*fg)
		out, code = run(t, gateway, "--dev-dir", dev, "--in", writeFile(t, dir, "spliced.xml", spliced))
		if code != 1 || !strings.Contains(out, "signature: INVALID") || !strings.Contains(out, "CONTENT_MISMATCH") || strings.Contains(out, "employees:") {
			t.Fatalf("spliced filing: exit %d\n%s", code, out)
		}
	})

	t.Run("gzip bomb bound", func(t *testing.T) {
		out, code := run(t, gateway, "--dev-dir", dev, "--in", filing, "--max-expanded", "100")
		if code != 2 || !strings.Contains(out, "expands beyond") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
