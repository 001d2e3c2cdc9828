package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const filing = `<?xml version="1.0" encoding="UTF-8"?>
<PRIHL version="1.0"><employee dep="123" act="1" fro="2026-11-01"><client><name sur="Nováková" fir="Jana"/></client></employee></PRIHL>
`

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDevTour walks the README's five-minute tour against a real pecetd.
func TestDevTour(t *testing.T) {
	d := startDev(t)
	d.secret("Nováková", "employee dep")
	work := t.TempDir()
	in := write(t, work, "filing.xml", filing)
	sig := filepath.Join(work, "filing.p7s")
	ca := filepath.Join(d.dir, "ca.pem")

	if code, body := d.get(t, "/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body := d.get(t, "/readyz"); code != 200 {
		t.Fatalf("readyz: %d %q", code, body)
	}

	t.Run("sign and verify", func(t *testing.T) {
		if _, errs, code := d.run(t, "sign", "--key", "client-sign", "--in", in, "--out", sig); code != 0 {
			t.Fatalf("sign: exit %d: %s", code, errs)
		}
		out, errs, code := d.run(t, "verify", "--in", sig, "--content", in)
		if code != 0 || !strings.HasPrefix(out, "VALID\n") {
			t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
		}
		for _, want := range []string{"signer:", "CN=client-sign", "signing time:"} {
			if !strings.Contains(out, want) {
				t.Errorf("verify output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("changed byte is INVALID", func(t *testing.T) {
		bad := write(t, work, "changed.xml", strings.Replace(filing, "Jana", "Jane", 1))
		out, _, code := d.run(t, "verify", "--in", sig, "--content", bad)
		if code != 1 || !strings.HasPrefix(out, "INVALID\n") || !strings.Contains(out, "DIGEST_MISMATCH") {
			t.Fatalf("want INVALID exit 1 with DIGEST_MISMATCH, got exit %d:\n%s", code, out)
		}
	})

	t.Run("openssl verifies pecet's signature", func(t *testing.T) {
		if out, err := openssl(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", in, "-CAfile", ca, "-out", os.DevNull); err != nil {
			t.Fatalf("openssl cms -verify: %v\n%s", err, out)
		}
	})

	t.Run("attached PEM", func(t *testing.T) {
		pemSig := filepath.Join(work, "attached.pem")
		if _, errs, code := d.run(t, "sign", "--key", "client-sign", "--in", in, "--out", pemSig, "--attached", "--pem"); code != 0 {
			t.Fatalf("sign --attached --pem: exit %d: %s", code, errs)
		}
		got := filepath.Join(work, "extracted.xml")
		if out, err := openssl(t, "cms", "-verify", "-binary", "-inform", "PEM", "-in", pemSig, "-CAfile", ca, "-out", got); err != nil {
			t.Fatalf("openssl cms -verify attached: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(got); string(b) != filing {
			t.Fatalf("openssl extracted %q", b)
		}
		if out, errs, code := d.run(t, "verify", "--in", pemSig); code != 0 {
			t.Fatalf("pecet verify attached: exit %d\n%s%s", code, out, errs)
		}
	})

	// An attached signature sent with other content: OpenSSL says "content
	// verify error", pecet INVALID (CONTENT_MISMATCH), exit 1; never VALID
	// for content the signature does not cover (docs/security.md).
	t.Run("attached with other content", func(t *testing.T) {
		att := filepath.Join(work, "a.p7s")
		if _, errs, code := d.run(t, "sign", "--key", "client-sign", "--in", in, "--out", att, "--attached"); code != 0 {
			t.Fatalf("sign --attached: exit %d: %s", code, errs)
		}
		other := write(t, work, "b.xml", strings.Replace(filing, "Jana", "Jane", 1))
		out, errs, code := d.run(t, "verify", "--in", att, "--content", other)
		if code != 1 || !strings.HasPrefix(out, "INVALID\n") || !strings.Contains(out, "CONTENT_MISMATCH") {
			t.Fatalf("want INVALID exit 1 with CONTENT_MISMATCH, got exit %d:\n%s%s", code, out, errs)
		}
		sum := sha256.Sum256([]byte(filing))
		out, errs, code = d.run(t, "verify", "--in", att, "--digest", hex.EncodeToString(sum[:]), "--out", filepath.Join(work, "embedded.xml"))
		if code != 0 || !strings.Contains(out, "content:       embedded, "+strconv.Itoa(len(filing))+" bytes, SHA-256 "+hex.EncodeToString(sum[:])) ||
			!strings.Contains(out, "compared with the digest given") {
			t.Fatalf("verify --digest of the embedded content: exit %d\n%s%s", code, out, errs)
		}
		if b, _ := os.ReadFile(filepath.Join(work, "embedded.xml")); string(b) != filing {
			t.Fatalf("--out wrote %q", b)
		}
	})

	// A signature whose certificate crypto/x509 refuses (a negative serial
	// number, as real CAs issued): a verdict, exit 3, never exit 4
	// (docs/security.md, "Signed attributes out of DER order").
	t.Run("certificate crypto/x509 refuses", func(t *testing.T) {
		key, cert, msg := filepath.Join(work, "neg-key.pem"), filepath.Join(work, "neg.pem"), filepath.Join(work, "neg.p7s")
		for _, args := range [][]string{
			{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=negative serial/C=IT", "-set_serial", "-5", "-days", "30"},
			{"cms", "-sign", "-binary", "-nodetach", "-in", in, "-signer", cert, "-inkey", key, "-outform", "DER", "-out", msg},
		} {
			if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl %v: %v\n%s", args[:2], err, out)
			}
		}
		out, errs, code := d.run(t, "verify", "--in", msg)
		if code != 3 || !strings.HasPrefix(out, "INDETERMINATE\n") || !strings.Contains(out, "CERTIFICATE_UNREADABLE") || strings.Contains(out, "SIGNATURE_MISMATCH") {
			t.Fatalf("want INDETERMINATE exit 3 with CERTIFICATE_UNREADABLE, got exit %d:\n%s%s", code, out, errs)
		}
	})

	t.Run("pecet verifies openssl's signature", func(t *testing.T) {
		key := filepath.Join(work, "o-key.pem")
		csr := filepath.Join(work, "o.csr")
		cert := filepath.Join(work, "o.pem")
		ext := write(t, work, "ext.cnf", "keyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=emailProtection\n")
		steps := [][]string{
			{"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj", "/CN=openssl signer/O=pecet test/C=CZ", "-out", csr},
			{"x509", "-req", "-in", csr, "-CA", ca, "-CAkey", filepath.Join(d.dir, "ca-key.pem"), "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", cert},
		}
		for _, s := range steps {
			if out, err := openssl(t, s...); err != nil {
				t.Fatalf("openssl %s: %v\n%s", s[0], err, out)
			}
		}
		for _, mode := range []string{"detached", "attached"} {
			osig := filepath.Join(work, "openssl-"+mode+".p7s")
			args := []string{"cms", "-sign", "-binary", "-outform", "DER", "-in", in, "-signer", cert, "-inkey", key, "-md", "sha256", "-out", osig}
			if mode == "attached" {
				args = append(args, "-nodetach")
			}
			if out, err := openssl(t, args...); err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, out)
			}
			vargs := []string{"verify", "--in", osig}
			if mode == "detached" {
				vargs = append(vargs, "--content", in)
			}
			out, errs, code := d.run(t, vargs...)
			if code != 0 || !strings.Contains(out, "CN=openssl signer") {
				t.Fatalf("%s: pecet verify of openssl signature: exit %d\n%s%s", mode, code, out, errs)
			}
		}
	})

	t.Run("keys list", func(t *testing.T) {
		out, errs, code := d.run(t, "keys", "list")
		if code != 0 {
			t.Fatalf("keys list: exit %d: %s", code, errs)
		}
		for _, re := range []string{
			`client-sign\s+1\*\s+RSA_2048\s+SIGN\s+ENABLED\s+CN=client-sign`,
			`gateway-decrypt\s+1\*\s+RSA_2048\s+DECRYPT\s+ENABLED\s+CN=gateway-decrypt`,
			`tsa\s+1\*\s+RSA_2048\s+TIMESTAMP\s+ENABLED\s+CN=tsa`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("keys list lacks %s:\n%s", re, out)
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		empty := write(t, work, "empty", "")
		garbage := write(t, work, "garbage.p7s", "this is not CMS")
		cases := []struct {
			name string
			args []string
			code int
			msg  string
		}{
			// A client learns nothing about aliases outside its grant: an
			// unknown alias is denied like another client's key.
			{"unknown key", []string{"sign", "--key", "nope", "--in", in}, 4, "PermissionDenied"},
			{"other client's key", []string{"sign", "--key", "tsa", "--in", in}, 4, "PermissionDenied"},
			{"role may not sign", []string{"sign", "--as", "gateway", "--key", "client-sign", "--in", in}, 4, "PermissionDenied"},
			// Global flags before the command reach it (README.md "Five-minute tour").
			{"role before the command may not sign", []string{"--as", "gateway", "--timeout", "20s", "sign", "--key", "client-sign", "--in", in}, 4, "PermissionDenied"},
			{"unknown flag before the command", []string{"--bogus", "sign", "--key", "client-sign", "--in", in}, 2, "-bogus"},
			{"empty body", []string{"sign", "--key", "client-sign", "--in", empty}, 4, "InvalidArgument"},
			{"malformed CMS", []string{"verify", "--in", garbage, "--content", in}, 4, "InvalidArgument"},
			{"unknown hash", []string{"sign", "--key", "client-sign", "--in", in, "--hash", "md5"}, 2, "--hash"},
			{"short digest", []string{"sign", "--key", "client-sign", "--digest", "abcd"}, 4, "InvalidArgument"},
			{"detached without content", []string{"verify", "--in", sig}, 4, "InvalidArgument"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				out, errs, code := d.run(t, c.args...)
				if code != c.code || !strings.Contains(errs, c.msg) {
					t.Fatalf("want exit %d with %q, got exit %d\nstdout: %s\nstderr: %s", c.code, c.msg, code, out, errs)
				}
				if strings.Count(strings.TrimSpace(errs), "\n") > 0 {
					t.Errorf("want a one-line message, got:\n%s", errs)
				}
			})
		}
	})

	t.Run("no PIN or content in what pecetd wrote", func(t *testing.T) {
		// Checked again, over everything, when the daemon stops.
		d.checkNoSecrets(t)
	})
}
