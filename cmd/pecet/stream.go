package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Streaming in `pecet encrypt` and `pecet decrypt` (--stream):
//   - auto (the default): the unary call for inputs that fit one message
//     (the gRPC limit less room for the rest of the request), the
//     streaming RPC above that. A regular file is judged by its size;
//     stdin or a pipe by reading up to the limit first, so that small
//     piped inputs still take one call and large ones stream with at most
//     that much held.
//   - always: the streaming RPC whatever the size (AES-CBC only).
//   - never: the unary call; a larger input is refused, as before.

// input is the command's input: prefix (already read) then rest.
type input struct {
	prefix []byte
	rest   io.Reader
	close  func()
	stream bool
}

func (in *input) reader() io.Reader {
	return io.MultiReader(bytes.NewReader(in.prefix), in.rest)
}

// openInput opens path ("-" is stdin) and decides, by mode, whether it
// streams; an input that does not stream is read whole (at most limit
// bytes, else a tooLargeError).
func openInput(path, mode string, limit int64) (*input, error) {
	var f *os.File
	in := &input{close: func() {}}
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		in.close = func() { f.Close() }
	}
	in.rest = f
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	switch mode {
	case "always":
		in.stream = true
		return in, nil
	case "auto":
		if size > limit {
			in.stream = true
			return in, nil
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		in.close()
		return nil, err
	}
	in.prefix = b
	if int64(len(b)) > limit {
		if mode == "never" {
			in.close()
			return nil, &tooLargeError{path: path, limit: limit}
		}
		in.stream = true
	}
	return in, nil
}

// output is where a streamed result goes: stdout, or a temporary file
// beside path renamed over it only when the call succeeded, so that a
// failed stream (a bad padding found at the end, a dropped connection)
// leaves no partial file behind. Stdout (and a device or FIFO named by
// --out) cannot take back what it wrote: the exit status then says to
// discard it.
type output struct {
	w      *bufio.Writer
	f      *os.File
	path   string
	mode   os.FileMode
	stdout bool
	direct bool // f is path itself, not a temporary file
}

// createOutput starts an output whose file gets mode when committed: 0644
// for public results (a signature, a CMS message), 0600 for plaintext. The
// temporary file is 0600 from the start (os.CreateTemp), so a plaintext is
// never readable by others, not even while it is written.
func createOutput(path string, mode os.FileMode) (*output, error) {
	if path == "" || path == "-" {
		return &output{w: bufio.NewWriterSize(os.Stdout, 256<<10), stdout: true}, nil
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		// A device, FIFO or socket (--out /dev/null, a named pipe) is
		// written into: a rename would replace it with a regular file.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return nil, err
		}
		return &output{w: bufio.NewWriterSize(f, 256<<10), f: f, path: path, direct: true}, nil
	}
	// A symbolic link keeps pointing where it did: the temporary file goes
	// beside its target, which the rename replaces.
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return nil, err
	}
	return &output{w: bufio.NewWriterSize(f, 256<<10), f: f, path: path, mode: mode}, nil
}

func (o *output) Write(p []byte) (int, error) { return o.w.Write(p) }

// commit flushes and, for a file, renames it into place.
func (o *output) commit() error {
	if err := o.w.Flush(); err != nil {
		o.abort()
		return err
	}
	if o.stdout {
		return nil
	}
	if o.direct {
		return o.f.Close()
	}
	if o.mode != 0o600 {
		// The temporary file is 0600 whatever the umask; a file meant to
		// be 0644 gets that less the umask, as a plain create would.
		if err := o.f.Chmod(o.mode &^ umask); err != nil {
			o.abort()
			return err
		}
	}
	if err := o.f.Close(); err != nil {
		o.abort()
		return err
	}
	if err := os.Rename(o.f.Name(), o.path); err != nil {
		os.Remove(o.f.Name())
		return err
	}
	return nil
}

// abort removes the temporary file; on stdout, a device or a FIFO it
// flushes nothing more.
func (o *output) abort() {
	if o.direct {
		o.f.Close()
		return
	}
	if o.f != nil {
		o.f.Close()
		os.Remove(o.f.Name())
	}
}

func checkStreamMode(mode string) error {
	switch mode {
	case "auto", "always", "never":
		return nil
	}
	return fmt.Errorf("--stream %q: use auto, always or never", mode)
}
