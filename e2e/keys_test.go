package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// certify has the dev CA sign a CSR with the key usage ext (openssl
// extension lines) and writes the chain (leaf, dev CA) to a PEM file.
func certify(t *testing.T, d *daemon, work, name, csr, ext string) string {
	t.Helper()
	extFile := write(t, work, name+".ext", ext)
	cert := filepath.Join(work, name+".pem")
	if out, err := openssl(t, "x509", "-req", "-in", csr, "-CA", filepath.Join(d.dir, "ca.pem"), "-CAkey", filepath.Join(d.dir, "ca-key.pem"),
		"-CAcreateserial", "-days", "30", "-extfile", extFile, "-out", cert); err != nil {
		t.Fatalf("openssl x509 -req: %v\n%s", err, out)
	}
	leaf, _ := os.ReadFile(cert)
	ca, _ := os.ReadFile(filepath.Join(d.dir, "ca.pem"))
	return write(t, work, name+"-chain.pem", string(leaf)+string(ca))
}

// mustRun runs pecet and fails unless it exits with want.
func (d *daemon) mustRun(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	out, errs, code := d.run(t, args...)
	if code != want {
		t.Fatalf("pecet %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errs)
	}
	return out, errs
}

const signExt = "keyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection\n"

// TestKeyLifecycleCLI: an officer rotates client-sign through the CLI while a
// filing signed before the rotation keeps verifying; new keys get CSRs that
// openssl accepts; destroy follows its rules; the audit log holds it all.
func TestKeyLifecycleCLI(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	in := write(t, work, "filing.xml", filing)
	before := filepath.Join(work, "before.p7s")
	if _, errs := d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", before); !strings.Contains(errs, "version 1") {
		t.Fatalf("sign before rotation: %s", errs)
	}

	t.Run("create and certify a new EC key", func(t *testing.T) {
		out, _ := d.mustRun(t, 0, "keys", "create", "--alias", "e2e-sign", "--purpose", "sign", "--algorithm", "p256")
		if !strings.Contains(out, "e2e-sign version 1: PENDING_CERTIFICATE") {
			t.Fatalf("create: %s", out)
		}
		csr := filepath.Join(work, "e2e.csr")
		d.mustRun(t, 0, "keys", "csr", "--alias", "e2e-sign", "--subject", "CN=E2E Signer,O=pecet test,C=CZ", "--san", "email:e2e@example.cz", "--out", csr)
		out, err := openssl(t, "req", "-in", csr, "-verify", "-noout", "-subject")
		if err != nil || !strings.Contains(out, "verify OK") || !strings.Contains(out, "CN") {
			t.Fatalf("openssl req -verify: %v\n%s", err, out)
		}
		// A certificate with decryption key usage does not fit a SIGN key.
		wrong := certify(t, d, work, "wrong", csr, "keyUsage=critical,keyEncipherment\n")
		if _, errs := d.mustRun(t, 4, "keys", "import-cert", "--alias", "e2e-sign", "--in", wrong); !strings.Contains(errs, "InvalidArgument") || !strings.Contains(errs, "key usage") {
			t.Fatalf("wrong usage: %s", errs)
		}
		chain := certify(t, d, work, "e2e", csr, signExt)
		out, _ = d.mustRun(t, 0, "keys", "import-cert", "--alias", "e2e-sign", "--in", chain)
		if !strings.Contains(out, "e2e-sign version 1: ENABLED, primary") {
			t.Fatalf("import: %s", out)
		}
		// Officers manage keys; clients do not.
		if _, errs := d.mustRun(t, 4, "keys", "create", "--as", "client", "--alias", "x", "--purpose", "sign", "--algorithm", "p256"); !strings.Contains(errs, "PermissionDenied") {
			t.Fatalf("client create: %s", errs)
		}
	})

	t.Run("rotate, certify, switch primary", func(t *testing.T) {
		out, _ := d.mustRun(t, 0, "keys", "rotate", "--alias", "client-sign")
		if !strings.Contains(out, "client-sign version 2: PENDING_CERTIFICATE") {
			t.Fatalf("rotate: %s", out)
		}
		if _, errs := d.mustRun(t, 4, "keys", "set-primary", "--alias", "client-sign", "--version", "2"); !strings.Contains(errs, "FailedPrecondition") {
			t.Fatalf("set-primary before certificate: %s", errs)
		}
		csr := filepath.Join(work, "v2.csr")
		d.mustRun(t, 0, "keys", "csr", "--alias", "client-sign", "--version", "2", "--subject", "CN=client-sign,O=pecet dev,C=CZ", "--out", csr)
		chain := certify(t, d, work, "v2", csr, signExt)
		if out, _ := d.mustRun(t, 0, "keys", "import-cert", "--alias", "client-sign", "--version", "2", "--in", chain); !strings.Contains(out, "version 2: ENABLED") || strings.Contains(out, "primary") {
			t.Fatalf("import v2: %s", out)
		}
		if _, errs := d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", filepath.Join(work, "still-v1.p7s")); !strings.Contains(errs, "version 1") {
			t.Fatalf("certified v2 must not take over before set-primary: %s", errs)
		}
		d.mustRun(t, 0, "keys", "set-primary", "--alias", "client-sign", "--version", "2")
		after := filepath.Join(work, "after.p7s")
		if _, errs := d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", after); !strings.Contains(errs, "version 2") {
			t.Fatalf("sign after set-primary: %s", errs)
		}
		for _, sig := range []string{before, after} {
			if out, _ := d.mustRun(t, 0, "verify", "--in", sig, "--content", in); !strings.HasPrefix(out, "VALID") {
				t.Fatalf("verify %s: %s", sig, out)
			}
		}
	})

	t.Run("destroy rules", func(t *testing.T) {
		for _, c := range []struct{ args []string }{
			{[]string{"keys", "destroy", "--alias", "client-sign", "--version", "2"}}, // the primary
			{[]string{"keys", "destroy", "--alias", "client-sign", "--version", "1"}}, // still enabled
			{[]string{"keys", "disable", "--alias", "client-sign", "--version", "2"}}, // the primary
		} {
			if _, errs := d.mustRun(t, 4, c.args...); !strings.Contains(errs, "FailedPrecondition") {
				t.Fatalf("%v: %s", c.args, errs)
			}
		}
		d.mustRun(t, 0, "keys", "disable", "--alias", "client-sign", "--version", "1")
		if out, _ := d.mustRun(t, 0, "keys", "destroy", "--alias", "client-sign", "--version", "1"); !strings.Contains(out, "version 1: DESTROYED") {
			t.Fatalf("destroy: %s", out)
		}
		d.mustRun(t, 4, "keys", "enable", "--alias", "client-sign", "--version", "1")
		out, _ := d.mustRun(t, 0, "keys", "show", "--alias", "client-sign")
		for _, re := range []string{
			`version 1\n  state:       DESTROYED\n  created: .*\n  public key:  sha256:[0-9a-f]{64}\n  subject:     CN=client-sign.*\n  certificate: sha256:[0-9a-f]{64}\n  valid:`,
			`version 2 \(primary\)\n  state:       ENABLED`,
			// The v2 certificate lives 30 days: inside the 30-day warning.
			`WARNING:    the primary version 2's certificate expires on`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("keys show lacks %s:\n%s", re, out)
			}
		}
		// Old signatures still verify: the certificate stays.
		if out, _ := d.mustRun(t, 0, "verify", "--in", before, "--content", in); !strings.HasPrefix(out, "VALID") {
			t.Fatalf("verify after destroy: %s", out)
		}
	})

	t.Run("audit log", func(t *testing.T) { checkAuditLog(t, d, work) })
}

// checkAuditLog verifies the dev folder's audit log, finds the key
// operations in it, greps it for secrets, and tampers with copies.
func checkAuditLog(t *testing.T, d *daemon, work string) {
	t.Helper()
	logPath := filepath.Join(d.dir, "audit.log")
	d.stop(t) // its final checkpoint vouches for the whole log
	d.verifyAudit(t, logPath)
	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(raw)
	for _, want := range []string{
		`"phase":"begin","call":`, `"rpc":"` + pecetv1.KeyService_RotateKey_FullMethodName + `"`,
		`"rpc":"` + pecetv1.KeyService_DestroyKeyVersion_FullMethodName + `","key":"client-sign","version":1`,
		`"rpc":"` + pecetv1.SignService_Sign_FullMethodName + `","key":"client-sign","version":2`, `"outcome":"denied","code":"PermissionDenied"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	pin, _ := os.ReadFile(filepath.Join(d.dir, "pin"))
	for name, secret := range map[string]string{"PIN": strings.TrimSpace(string(pin)), "filing content": "Nováková", "filing markup": "<PRIHL"} {
		if strings.Contains(log, secret) {
			t.Errorf("audit log contains the %s", name)
		}
	}
	lines := strings.SplitAfter(strings.TrimSuffix(log, "\n"), "\n")
	if len(lines) < 6 {
		t.Fatalf("only %d audit lines", len(lines))
	}
	fixNL := func(ls []string) string {
		s := strings.Join(ls, "")
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s
	}
	edited := append([]string{}, lines...)
	edited[3] = strings.Replace(edited[3], `"seq":4`, `"seq":4 `, 1)
	if edited[3] == lines[3] {
		t.Fatal("edit did not apply")
	}
	cases := []struct {
		name, content, want string
	}{
		{"removed line", fixNL(append(append([]string{}, lines[:2]...), lines[3:]...)), "line 3"},
		{"reordered", fixNL(append([]string{lines[0], lines[2], lines[1]}, lines[3:]...)), "line 2"},
		{"edited", fixNL(edited), "line 4"},
	}
	for _, c := range cases {
		p := write(t, work, strings.ReplaceAll(c.name, " ", "-")+".log", c.content)
		out, _, code := d.run(t, "audit", "verify", "--cert", filepath.Join(d.dir, "audit.pem"), p)
		if code != 1 || !strings.Contains(out, "BROKEN") || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d: %s", c.name, code, out)
		}
	}
}

// TestDualControlCLI: with dual control configured for cssz-*, creation
// and destruction wait for a second officer; self-approval is refused;
// requests expire.
func TestDualControlCLI(t *testing.T) {
	d := startDev(t)
	d.stop(t)
	cfg := filepath.Join(d.dir, "pecet.yaml")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 4 * time.Second
	yaml := strings.Replace(string(b), "keys:\n  expiry_warning_days: 30\n",
		"keys:\n  expiry_warning_days: 30\n  dual_control:\n    aliases: [\"cssz-*\"]\n    request_ttl: 4s\n", 1)
	if yaml == string(b) {
		t.Fatal("pecet.yaml has no keys section to extend")
	}
	write(t, d.dir, "pecet.yaml", yaml)
	d = restartDev(t, d)

	idRE := regexp.MustCompile(`pending request ([0-9a-f]{16})`)
	expiresRE := regexp.MustCompile(`expires (\S+)\)`)
	out, _ := d.mustRun(t, 0, "keys", "create", "--alias", "cssz-sign", "--purpose", "sign", "--algorithm", "p256")
	m := idRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no pending request: %s", out)
	}
	id := m[1]
	if _, errs := d.mustRun(t, 4, "keys", "show", "--alias", "cssz-sign"); !strings.Contains(errs, "NotFound") {
		t.Fatalf("key exists before approval: %s", errs)
	}
	if _, errs := d.mustRun(t, 4, "keys", "approve", id); !strings.Contains(errs, "PermissionDenied") || !strings.Contains(errs, "different officer") {
		t.Fatalf("self-approval: %s", errs)
	}
	if out, _ := d.mustRun(t, 0, "keys", "requests", "--as", "officer-2"); !strings.Contains(out, id) || !strings.Contains(out, "create") {
		t.Fatalf("requests: %s", out)
	}
	if out, _ := d.mustRun(t, 0, "keys", "approve", "--as", "officer-2", id); !strings.Contains(out, "cssz-sign version 1: PENDING_CERTIFICATE") {
		t.Fatalf("approve: %s", out)
	}
	d.mustRun(t, 4, "keys", "approve", "--as", "officer-2", id) // done already

	// Outside the globs nothing waits.
	if out, _ := d.mustRun(t, 0, "keys", "create", "--alias", "solo", "--purpose", "sign", "--algorithm", "p256"); strings.Contains(out, "pending") {
		t.Fatalf("solo: %s", out)
	}

	// Expiry.
	out, _ = d.mustRun(t, 0, "keys", "destroy", "--alias", "cssz-sign", "--version", "1")
	m = idRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("destroy did not wait: %s", out)
	}
	// Wait for the expiry the server stated (same clock), not a guess.
	em := expiresRE.FindStringSubmatch(out)
	if em == nil {
		t.Fatalf("no expiry in: %s", out)
	}
	expires, err := time.Parse(time.RFC3339, em[1])
	if err != nil {
		t.Fatal(err)
	}
	testtool.Eventually(t, ttl+10*time.Second, func() bool { return !time.Now().Before(expires) }, "request %s expired", m[1])
	if _, errs := d.mustRun(t, 4, "keys", "approve", "--as", "officer-2", m[1]); !strings.Contains(errs, "expired") {
		t.Fatalf("expired approval: %s", errs)
	}
	if out, _ := d.mustRun(t, 0, "keys", "show", "--alias", "cssz-sign"); !strings.Contains(out, "PENDING_CERTIFICATE") {
		t.Fatalf("expired request was carried out: %s", out)
	}
	d.stop(t)
	d.verifyAudit(t, filepath.Join(d.dir, "audit.log"))
}
