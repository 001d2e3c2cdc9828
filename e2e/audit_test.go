package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rechainLog rewrites every line with edit and recomputes each line's prev
// and hash, as a forger with write access to the file would: the plain
// SHA-256 chain holds, the signatures cannot.
func rechainLog(t *testing.T, log string, edit func(string) string) string {
	t.Helper()
	prevRE := regexp.MustCompile(`"prev":"[0-9a-f]{64}"`)
	prev := strings.Repeat("0", 64)
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		i := strings.LastIndex(line, `,"hash":"`)
		body := prevRE.ReplaceAllString(edit(line[:i]), `"prev":"`+prev+`"`) + "}"
		sum := sha256.Sum256([]byte(body))
		prev = hex.EncodeToString(sum[:])
		b.WriteString(body[:len(body)-1] + `,"hash":"` + prev + `"}` + "\n")
	}
	return b.String()
}

// TestAuditTamperEvident: a stopped pecetd's audit log verifies against the
// dev audit key's certificate; a rewritten copy is BROKEN, a copy without
// its tail INCOMPLETE, a copy without its start BROKEN; pecetd refuses to
// resume a truncated log, and --audit-new-log starts a new one with a
// signed note of the break.
func TestAuditTamperEvident(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	in := write(t, work, "filing.xml", "<PRIHL/>")
	d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", filepath.Join(work, "f.p7s"))
	d.mustRun(t, 4, "sign", "--as", "gateway", "--key", "client-sign", "--in", in, "--out", filepath.Join(work, "g.p7s"))
	d.stop(t)
	logPath := filepath.Join(d.dir, "audit.log")
	d.verifyAudit(t, logPath)
	if out, _ := d.mustRun(t, 0, "audit", "verify", "--cert", filepath.Join(d.dir, "audit.pem"), "--max-age", "10m", logPath); !strings.HasPrefix(out, "OK") {
		t.Fatalf("--max-age 10m: %s", out)
	}
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	lines := strings.SplitAfter(strings.TrimSuffix(log, "\n"), "\n")
	lines[len(lines)-1] += "\n"
	if !strings.Contains(lines[0], `"phase":"genesis"`) || !strings.Contains(lines[len(lines)-1], `"phase":"checkpoint"`) {
		t.Fatalf("a stopped log starts with genesis and ends with a checkpoint:\n%s", log)
	}
	cases := []struct {
		name, content string
		code          int
		want          string
	}{
		{"rewritten with recomputed hashes", rechainLog(t, log, func(s string) string { return strings.ReplaceAll(s, "client-sign", "client-sigX") }), 1, "BROKEN"},
		{"tail cut", strings.Join(lines[:len(lines)-2], ""), 5, "INCOMPLETE"},
		{"start cut", strings.Join(lines[2:], ""), 1, "neither at seq 1 nor at a signed hand-over"},
	}
	for _, c := range cases {
		p := write(t, work, strings.ReplaceAll(c.name, " ", "-")+".log", c.content)
		if _, _, code := d.run(t, "audit", "verify", "--unsigned", p); c.name == "rewritten with recomputed hashes" && code != 0 {
			t.Errorf("%s: the plain chain should hold (exit %d)", c.name, code)
		}
		out, errs, code := d.run(t, "audit", "verify", "--cert", filepath.Join(d.dir, "audit.pem"), p)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want %d %q\n%s%s", c.name, code, c.code, c.want, out, errs)
		}
	}

	// pecetd refuses to resume the truncated log…
	if err := os.WriteFile(logPath, []byte(strings.Join(lines[:len(lines)-2], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	errs, code := runPecetd(t, nil, "--dev", "--dev-dir", d.dir, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errs, "cut from its end") || !strings.Contains(errs, "--audit-new-log") {
		t.Fatalf("resume on a truncated log: exit %d\n%s", code, errs)
	}
	// …until told to start a new log after the break.
	d2 := startDevFlags(t, d.dir, []string{"--audit-new-log"})
	d2.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", filepath.Join(work, "f2.p7s"))
	d2.stop(t)
	out := d2.verifyAudit(t, logPath)
	if !strings.Contains(out, "starts after a break") || !strings.Contains(out, "cut from its end") {
		t.Fatalf("new log after the break: %s", out)
	}
	if m, _ := filepath.Glob(logPath + ".broken-*"); len(m) != 1 {
		t.Fatalf("the refused log was not moved aside: %v", m)
	}
	// And a clean stop resumes without the flag.
	d3 := restartDev(t, d2)
	d3.stop(t)
	d3.verifyAudit(t, logPath)
}

// TestInitAuditKey: pecetd --init-audit-key creates a missing AUDIT key on
// the token with a self-signed certificate and prints it; run again it
// prints the same certificate; a key of another purpose is refused.
func TestInitAuditKey(t *testing.T) {
	d := startDev(t)
	d.stop(t)
	pecetd, _ := binaries(t)
	base, err := os.ReadFile(filepath.Join(d.dir, "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(key string) (string, string, int) {
		cfg := write(t, d.dir, "pecet-"+key+".yaml", strings.Replace(string(base), "  key: audit ", "  key: "+key+" ", 1))
		cmd := exec.Command(pecetd, "--config", cfg, "--init-audit-key")
		cmd.Env = append(cleanEnv(), "SOFTHSM2_CONF="+filepath.Join(d.dir, "softhsm2.conf"))
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return out.String(), errb.String(), code
	}
	first, errs, code := run("audit-prod")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	blk, _ := pem.Decode([]byte(first))
	if blk == nil {
		t.Fatalf("no PEM: %q", first)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil || cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Fatalf("certificate: %v", err)
	}
	if again, _, code := run("audit-prod"); code != 0 || again != first {
		t.Fatalf("second run: exit %d, same certificate %v", code, again == first)
	}
	if _, errs, code := run("client-sign"); code != 1 || !strings.Contains(errs, "not AUDIT") {
		t.Fatalf("a SIGN key as audit.key: exit %d: %s", code, errs)
	}
}
