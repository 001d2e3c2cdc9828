package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOutputModes: under umask 022, every file the CLI writes that carries
// a document's content or a plaintext (verify --out, decrypt --out, an
// attached signature from sign or augment) is created 0600, also over an
// existing 0644 file; what carries no content (a detached signature, a
// CMS EnvelopedData, a time-stamp token, an evidence record, a validation
// report, a CSR) is 0644 (docs/security.md, "Files the CLI writes").
func TestOutputModes(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	d := startDev(t)
	work := t.TempDir()
	in := filepath.Join(work, "filing.xml")
	if err := os.WriteFile(in, []byte("<PRIHL><employee rc=\"7401010001\"/></PRIHL>\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	detached, attached, p7m := filepath.Join(work, "d.p7s"), filepath.Join(work, "a.p7s"), filepath.Join(work, "filing.p7m")
	d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", detached)
	d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", attached, "--attached")
	d.mustRun(t, 0, "encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", p7m, "--cipher", "aes256-cbc")
	list := filepath.Join(work, "list")
	if err := os.WriteFile(list, []byte(strings.Repeat("a", 64)+"  one\n"+strings.Repeat("b", 64)+"  two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	docs := filepath.Join(work, "docs")
	if err := os.Mkdir(docs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docs, "a.xml"), []byte("<a/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(d.dir, "client-sign.pem")

	const private, public = os.FileMode(0o600), os.FileMode(0o644)
	for _, tc := range []struct {
		name string
		// args gets the output: a file, or a folder (dir) for the commands
		// that write one file per item.
		args     func(out string) []string
		dir      bool
		existing bool // a 0644 file is there before
		want     os.FileMode
	}{
		{"verify --out", func(o string) []string { return []string{"verify", "--in", attached, "--out", o} }, false, false, private},
		{"verify --out over a 0644 file", func(o string) []string { return []string{"verify", "--in", attached, "--out", o} }, false, true, private},
		{"decrypt --out", func(o string) []string { return []string{"decrypt", "--in", p7m, "--out", o, "--stream", "never"} }, false, false, private},
		{"decrypt --out streamed", func(o string) []string { return []string{"decrypt", "--in", p7m, "--out", o, "--stream", "always"} }, false, true, private},
		{"sign --attached", func(o string) []string {
			return []string{"sign", "--key", "client-sign", "--in", in, "--attached", "--out", o}
		}, false, false, private},
		{"sign --attached --pem over a 0644 file", func(o string) []string {
			return []string{"sign", "--key", "client-sign", "--in", in, "--attached", "--pem", "--out", o}
		}, false, true, private},
		{"augment an attached signature", func(o string) []string { return []string{"augment", "--level", "t", "--in", attached, "--out", o} }, false, true, private},
		{"sign detached", func(o string) []string { return []string{"sign", "--key", "client-sign", "--in", in, "--out", o} }, false, false, public},
		{"augment a detached signature", func(o string) []string {
			return []string{"augment", "--level", "t", "--in", detached, "--content", in, "--out", o}
		}, false, false, public},
		{"sign --digest-file", func(o string) []string {
			return []string{"sign", "--key", "client-sign", "--digest-file", list, "--out", o}
		}, true, false, public},
		{"encrypt", func(o string) []string {
			return []string{"encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", o, "--stream", "never"}
		}, false, false, public},
		{"encrypt streamed", func(o string) []string {
			return []string{"encrypt", "--to-key", "gateway-decrypt", "--in", in, "--out", o, "--stream", "always"}
		}, false, false, public},
		{"timestamp", func(o string) []string { return []string{"timestamp", "--in", in, "--out", o} }, false, false, public},
		{"timestamp --batch", func(o string) []string { return []string{"timestamp", "--batch", list, "--out", o} }, true, false, public},
		{"archive seal", func(o string) []string { return []string{"archive", "seal", "--out", o, docs} }, true, false, public},
		{"verify --report", func(o string) []string {
			return []string{"verify", "--in", detached, "--content", in, "--report", o}
		}, false, false, public},
		{"chain verify --report", func(o string) []string {
			return []string{"chain", "verify", "--cert", leaf, "--purpose", "signing", "--report", o}
		}, false, false, public},
		{"keys csr", func(o string) []string {
			return []string{"keys", "csr", "--alias", "client-sign", "--subject", "CN=Jana Nováková,C=CZ", "--out", o}
		}, false, false, public},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			if tc.dir {
				if err := os.Mkdir(out, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.existing {
				if err := os.WriteFile(out, []byte("an older file"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(out, 0o644); err != nil { // whatever the umask
					t.Fatal(err)
				}
			}
			d.mustRun(t, 0, tc.args(out)...)
			files := []string{out}
			if tc.dir {
				ents, err := os.ReadDir(out)
				if err != nil || len(ents) == 0 {
					t.Fatalf("nothing written under %s: %v", out, err)
				}
				files = files[:0]
				for _, e := range ents {
					files = append(files, filepath.Join(out, e.Name()))
				}
			}
			for _, f := range files {
				fi, err := os.Lstat(f)
				if err != nil {
					t.Fatal(err)
				}
				if !fi.Mode().IsRegular() {
					t.Fatalf("%s is %v, not a regular file", f, fi.Mode())
				}
				if m := fi.Mode().Perm(); m != tc.want {
					t.Errorf("%s has mode %#o, want %#o", filepath.Base(f), m, tc.want)
				}
			}
		})
	}
}
