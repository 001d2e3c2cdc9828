package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnvelope encrypts and decrypts through the real server and CLI, with
// OpenSSL on the other side both ways, and checks who may do what.
func TestEnvelope(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	body := make([]byte, 1<<20)
	rand.Read(body)
	in := filepath.Join(work, "body.bin")
	if err := os.WriteFile(in, body, 0o600); err != nil {
		t.Fatal(err)
	}
	gwCert := filepath.Join(d.dir, "gateway-decrypt.pem")

	same := func(t *testing.T, path string) {
		t.Helper()
		if b, _ := os.ReadFile(path); !bytes.Equal(b, body) {
			t.Fatalf("%s: %d bytes differ from the body", path, len(b))
		}
	}

	for _, cipher := range []string{"aes256-cbc", "aes256-gcm"} {
		for _, kt := range []string{"rsa-oaep", "rsa-oaep-sha1", "rsa-pkcs1"} {
			t.Run("pecet/"+cipher+"/"+kt, func(t *testing.T) {
				p7m := filepath.Join(t.TempDir(), "body.p7m")
				if _, errs, code := d.run(t, "encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", p7m, "--cipher", cipher, "--key-transport", kt); code != 0 {
					t.Fatalf("encrypt: exit %d: %s", code, errs)
				}
				out := filepath.Join(t.TempDir(), "body")
				_, errs, code := d.run(t, "decrypt", "--in", p7m, "--out", out)
				if code != 0 || !strings.Contains(errs, "gateway-decrypt version 1") {
					t.Fatalf("decrypt: exit %d: %s", code, errs)
				}
				same(t, out)
			})
		}
	}

	t.Run("openssl encrypts, pecet decrypts (OAEP-SHA256, GCM)", func(t *testing.T) {
		p7m := filepath.Join(work, "openssl.p7m")
		if out, err := openssl(t, "cms", "-encrypt", "-binary", "-outform", "DER", "-in", in, "-out", p7m, "-aes-256-gcm",
			"-recip", gwCert, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"); err != nil {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
		out := filepath.Join(work, "from-openssl")
		if _, errs, code := d.run(t, "decrypt", "--in", p7m, "--out", out, "--key", "gateway-decrypt"); code != 0 {
			t.Fatalf("decrypt: exit %d: %s", code, errs)
		}
		same(t, out)
	})

	t.Run("pecet encrypts to a certificate file, openssl decrypts (PEM)", func(t *testing.T) {
		key, cert := filepath.Join(work, "r-key.pem"), filepath.Join(work, "r.pem")
		if out, err := openssl(t, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=receiver",
			"-days", "2", "-addext", "keyUsage=keyEncipherment"); err != nil {
			t.Fatalf("openssl req: %v\n%s", err, out)
		}
		p7m := filepath.Join(work, "to-openssl.pem")
		// No --cipher: AES-256-GCM (AuthEnvelopedData), which OpenSSL reads.
		if _, errs, code := d.run(t, "encrypt", "--to", cert, "--to", gwCert, "--in", in, "--out", p7m, "--pem"); code != 0 || !strings.Contains(errs, "with aes256-gcm") {
			t.Fatalf("encrypt: exit %d: %s", code, errs)
		}
		out := filepath.Join(work, "by-openssl")
		if o, err := openssl(t, "cms", "-decrypt", "-binary", "-inform", "PEM", "-in", p7m, "-recip", cert, "-inkey", key, "-out", out); err != nil {
			t.Fatalf("openssl decrypt: %v\n%s", err, o)
		}
		same(t, out)
		// The second recipient, the gateway, opens the same message.
		out2 := filepath.Join(work, "by-gateway")
		if _, errs, code := d.run(t, "decrypt", "--in", p7m, "--out", out2); code != 0 {
			t.Fatalf("decrypt: exit %d: %s", code, errs)
		}
		same(t, out2)
	})

	p7m := filepath.Join(work, "authz.p7m")
	if _, errs, code := d.run(t, "encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", p7m, "--cipher", "aes256-gcm"); code != 0 {
		t.Fatalf("encrypt: exit %d: %s", code, errs)
	}

	t.Run("tampered message: one answer", func(t *testing.T) {
		b, _ := os.ReadFile(p7m)
		var msgs []string
		for _, off := range []int{300, 400, len(b) / 2, len(b) - 5} {
			bad := bytes.Clone(b)
			bad[off] ^= 1
			p := filepath.Join(t.TempDir(), "bad.p7m")
			os.WriteFile(p, bad, 0o600)
			_, errs, code := d.run(t, "decrypt", "--in", p, "--out", filepath.Join(t.TempDir(), "x"))
			if code != 4 {
				t.Fatalf("offset %d: exit %d: %s", off, code, errs)
			}
			msgs = append(msgs, errs)
		}
		for _, m := range msgs {
			if m != msgs[0] || !strings.Contains(m, "InvalidArgument: decryption failed") {
				t.Fatalf("answers differ or unexpected: %q", msgs)
			}
		}
	})

	t.Run("authorisation", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			ok   bool
		}{
			{[]string{"encrypt", "--as", "client", "--to-key", "gateway-decrypt", "--in", in, "--out", os.DevNull}, true},
			{[]string{"encrypt", "--as", "gateway", "--to-key", "gateway-decrypt", "--in", in, "--out", os.DevNull}, false},
			{[]string{"encrypt", "--as", "officer", "--to", gwCert, "--in", in, "--out", os.DevNull}, false},
			{[]string{"decrypt", "--as", "gateway", "--in", p7m, "--out", os.DevNull}, true},
			{[]string{"decrypt", "--as", "client", "--in", p7m, "--out", os.DevNull}, false},
			{[]string{"decrypt", "--as", "officer", "--in", p7m, "--out", os.DevNull}, false},
		} {
			_, errs, code := d.run(t, tc.args...)
			switch {
			case tc.ok && code != 0:
				t.Errorf("%v: exit %d: %s", tc.args, code, errs)
			case !tc.ok && (code != 4 || !strings.Contains(errs, "PermissionDenied")):
				t.Errorf("%v: want PermissionDenied exit 4, got %d: %s", tc.args, code, errs)
			}
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		if _, _, code := d.run(t, "encrypt", "--in", in); code != 2 {
			t.Errorf("no recipient: exit %d", code)
		}
		if _, _, code := d.run(t, "encrypt", "--to-key", "gateway-decrypt", "--in", in, "--cipher", "des"); code != 2 {
			t.Errorf("bad cipher: exit %d", code)
		}
	})
}
