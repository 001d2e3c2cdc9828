package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEnvelopeStreamLarge: a 25 MiB body, above the 24 MiB message limit,
// through `pecet encrypt` and `pecet decrypt` against pecetd --dev: files
// (streamed by size), stdin to stdout (streamed after reading up to the
// limit), OpenSSL's -stream output decrypted by pecet and pecet's streamed
// output decrypted by OpenSSL, and a tampered
// message that leaves no output file behind.
func TestEnvelopeStreamLarge(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	body := make([]byte, 25<<20+1)
	rand.Read(body)
	in := filepath.Join(work, "big.bin")
	if err := os.WriteFile(in, body, 0o600); err != nil {
		t.Fatal(err)
	}
	same := func(t *testing.T, path string) {
		t.Helper()
		if b, _ := os.ReadFile(path); !bytes.Equal(b, body) {
			t.Fatalf("%s: %d bytes differ from the %d-byte body", path, len(b), len(body))
		}
	}
	p7m := filepath.Join(work, "big.p7m")
	// No --cipher: streamed, so AES-256-CBC (GCM is not streamed).
	if _, errs, code := d.run(t, "encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", p7m); code != 0 || !strings.Contains(errs, "(streamed)") || !strings.Contains(errs, "with aes256-cbc") {
		t.Fatalf("encrypt: exit %d: %s", code, errs)
	}
	t.Run("decrypt file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "big.out")
		if _, errs, code := d.run(t, "decrypt", "--in", p7m, "--out", out); code != 0 || !strings.Contains(errs, "(streamed) with gateway-decrypt version 1") {
			t.Fatalf("decrypt: exit %d: %s", code, errs)
		}
		same(t, out)
	})
	t.Run("stdin to stdout", func(t *testing.T) {
		dir := t.TempDir()
		enc, dec := filepath.Join(dir, "piped.p7m"), filepath.Join(dir, "piped.out")
		if errs, err := pipe(t, d, in, enc, "encrypt", "--to-key", "gateway-decrypt", "--in", "-", "--out", "-"); err != nil {
			t.Fatalf("encrypt: %v: %s", err, errs)
		}
		if errs, err := pipe(t, d, enc, dec, "decrypt", "--in", "-", "--out", "-"); err != nil {
			t.Fatalf("decrypt: %v: %s", err, errs)
		}
		same(t, dec)
	})
	t.Run("openssl -stream encrypts, pecet decrypts", func(t *testing.T) {
		o := filepath.Join(work, "openssl.p7m")
		if out, err := openssl(t, "cms", "-encrypt", "-stream", "-binary", "-outform", "DER", "-in", in, "-out", o, "-aes-256-cbc",
			"-recip", filepath.Join(d.dir, "gateway-decrypt.pem"), "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"); err != nil {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
		out := filepath.Join(t.TempDir(), "from-openssl")
		if _, errs, code := d.run(t, "decrypt", "--in", o, "--out", out); code != 0 {
			t.Fatalf("decrypt: exit %d: %s", code, errs)
		}
		same(t, out)
	})
	t.Run("pecet encrypts (EncryptStream), openssl decrypts", func(t *testing.T) {
		dir := t.TempDir()
		key, cert := filepath.Join(dir, "r-key.pem"), filepath.Join(dir, "r.pem")
		if out, err := openssl(t, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=receiver",
			"-days", "2", "-addext", "keyUsage=keyEncipherment"); err != nil {
			t.Fatalf("openssl req: %v\n%s", err, out)
		}
		enc := filepath.Join(dir, "to-openssl.p7m")
		if _, errs, code := d.run(t, "encrypt", "--to", cert, "--in", in, "--out", enc); code != 0 || !strings.Contains(errs, "(streamed)") {
			t.Fatalf("encrypt: exit %d: %s", code, errs)
		}
		out := filepath.Join(dir, "by-openssl")
		if o, err := openssl(t, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", enc, "-recip", cert, "-inkey", key, "-out", out); err != nil {
			t.Fatalf("openssl decrypt: %v\n%s", err, o)
		}
		same(t, out)
	})
	t.Run("tampered: no output file", func(t *testing.T) {
		b, err := os.ReadFile(p7m)
		if err != nil {
			t.Fatal(err)
		}
		// The byte before the last segment's header (04 10) and the
		// end-of-contents octets: it is XORed into the padding.
		b[len(b)-10-16-2-1] ^= 1
		bad := filepath.Join(t.TempDir(), "bad.p7m")
		if err := os.WriteFile(bad, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(filepath.Dir(bad), "bad.out")
		_, errs, code := d.run(t, "decrypt", "--in", bad, "--out", out)
		if code != 4 || !strings.Contains(errs, "decryption failed") {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(bad), "*out*")); len(left) != 0 {
			t.Fatalf("left behind: %v", left)
		}
	})
}

// pipe runs pecet with stdin from the file in and stdout to the file out.
func pipe(t *testing.T, d *daemon, in, out string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	fi, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer fi.Close()
	fo, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fo.Close()
	cmd := exec.CommandContext(ctx, d.pecet, args...)
	cmd.Env = append(cleanEnv(), "PECET_DEV_DIR="+d.dir)
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = fi, fo, &errb
	err = cmd.Run()
	return errb.String(), err
}
