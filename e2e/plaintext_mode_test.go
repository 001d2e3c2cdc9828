package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDecryptOutputPrivate: `pecet decrypt --out FILE` creates the
// plaintext 0600 (less the umask), one message or streamed, over an
// existing 0644 file too, and leaves no temporary file beside it (see
// docs/security.md, "Files the CLI writes").
func TestDecryptOutputPrivate(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	body := []byte("<PRIHL><employee rc=\"7401010001\"/></PRIHL>\n")
	in := filepath.Join(work, "filing.xml")
	if err := os.WriteFile(in, body, 0o600); err != nil {
		t.Fatal(err)
	}
	p7m := filepath.Join(work, "filing.p7m")
	if _, errs, code := d.run(t, "encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", p7m, "--cipher", "aes256-cbc"); code != 0 {
		t.Fatalf("encrypt: exit %d: %s", code, errs)
	}
	for _, tc := range []struct {
		name, stream string
		existing     bool
	}{
		{"one message, new file", "never", false},
		{"one message, over a 0644 file", "never", true},
		{"streamed, new file", "always", false},
		{"streamed, over a 0644 file", "always", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "opened.xml")
			if tc.existing {
				if err := os.WriteFile(out, []byte("old content, longer than the new one: it must be gone entirely"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(out, 0o644); err != nil { // whatever the umask
					t.Fatal(err)
				}
			}
			if _, errs, code := d.run(t, "decrypt", "--in", p7m, "--out", out, "--stream", tc.stream); code != 0 {
				t.Fatalf("decrypt: exit %d: %s", code, errs)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if m := fi.Mode().Perm(); m&0o077 != 0 || m&0o600 != 0o600 {
				t.Fatalf("%s has mode %#o, want 0600", out, m)
			}
			if b, _ := os.ReadFile(out); !bytes.Equal(b, body) {
				t.Fatalf("content %q, want %q", b, body)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("left beside the output: %v", ents)
			}
		})
	}
}
