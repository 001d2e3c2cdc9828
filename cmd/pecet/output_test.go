package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWritePrivateOutput: plaintext lands 0600 whatever was there before;
// a symbolic link is followed (its target replaced, the link kept) and a
// FIFO or device is written into, never renamed over: --out /dev/null run
// as root once replaced the device with a regular file.
func TestWritePrivateOutput(t *testing.T) {
	body := []byte("plaintext: 7401010001\n")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) (out string, check func(t *testing.T))
	}{
		{"new file", func(t *testing.T, dir string) (string, func(*testing.T)) {
			out := filepath.Join(dir, "out")
			return out, func(t *testing.T) { wantPrivate(t, out, body) }
		}},
		{"over a 0644 file", func(t *testing.T, dir string) (string, func(*testing.T)) {
			out := filepath.Join(dir, "out")
			writeMode(t, out, []byte("an older and longer content"), 0o644)
			return out, func(t *testing.T) { wantPrivate(t, out, body) }
		}},
		{"symbolic link", func(t *testing.T, dir string) (string, func(*testing.T)) {
			target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
			writeMode(t, target, []byte("old"), 0o644)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			return link, func(t *testing.T) {
				if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Fatalf("%s is no longer a link: %v", link, err)
				}
				wantPrivate(t, target, body)
			}
		}},
		{"FIFO", func(t *testing.T, dir string) (string, func(*testing.T)) {
			fifo := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			go func() {
				f, err := os.Open(fifo)
				if err != nil {
					got <- nil
					return
				}
				defer f.Close()
				b, _ := io.ReadAll(f)
				got <- b
			}()
			return fifo, func(t *testing.T) {
				if b := <-got; !bytes.Equal(b, body) {
					t.Fatalf("read %q from the FIFO, want %q", b, body)
				}
				if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
					t.Fatalf("%s is no longer a FIFO: %v", fifo, err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, check := tc.setup(t, dir)
			if err := writePrivateOutput(out, body); err != nil {
				t.Fatal(err)
			}
			check(t)
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if filepath.Ext(e.Name()) == ".part" {
					t.Fatalf("left behind: %s", e.Name())
				}
			}
		})
	}
}

func writeMode(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // whatever the umask
		t.Fatal(err)
	}
}

func wantPrivate(t *testing.T, path string, body []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 || m&0o600 != 0o600 {
		t.Fatalf("%s has mode %#o, want 0600", path, m)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, body) {
		t.Fatalf("%s holds %q, want %q", path, b, body)
	}
}

// TestOutputHonoursUmask: an output meant to be 0644 is 0644 less the
// umask (0600 under 077), as a plain create would be; a private one stays
// 0600.
func TestOutputHonoursUmask(t *testing.T) {
	saved := umask
	t.Cleanup(func() { umask = saved })
	for _, tt := range []struct {
		umask, mode, want os.FileMode
	}{
		{0o022, 0o644, 0o644},
		{0o077, 0o644, 0o600},
		{0o027, 0o644, 0o640},
		{0o022, 0o600, 0o600},
	} {
		umask = tt.umask
		path := filepath.Join(t.TempDir(), "out")
		o, err := createOutput(path, tt.mode)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := o.commit(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tt.want {
			t.Errorf("umask %#o, mode %#o: file is %#o, want %#o", tt.umask, tt.mode, got, tt.want)
		}
	}
}
