package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc/status"

	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/signer"
)

// conn holds the connection flags every command shares.
type conn struct {
	opts    client.Options
	timeout time.Duration
	json    bool
	fs      *flag.FlagSet // the command's flags (which were given)
}

func newFlags(name, synopsis, defaultRole string) (*flag.FlagSet, *conn) {
	return newFlagsCert(name, synopsis, defaultRole, "cert")
}

// newFlagsCert names the TLS client certificate flag certFlag: `pecet chain
// verify` uses --cert for the certificate it judges (README.md "Certificate
// policy"), so there the
// TLS one is --client-cert (as --key-file gives way to sign's --key).
// pecet timestamp keeps --cert for OpenSSL's meaning (include the TSA
// certificate), so there the TLS one is --client-cert too.
func newFlagsCert(name, synopsis, defaultRole, certFlag string) (*flag.FlagSet, *conn) {
	fs := flag.NewFlagSet("pecet "+name, flag.ContinueOnError)
	c := &conn{fs: fs}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pecet %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.opts.Server, "server", "", "pecetd gRPC `address` (PECET_SERVER; default: the dev folder's, else 127.0.0.1:7443)")
	fs.StringVar(&c.opts.Cert, certFlag, "", "client certificate PEM `file` (PECET_CERT)")
	fs.StringVar(&c.opts.Key, "key-file", "", "client private key PEM `file` (PECET_KEY)")
	fs.StringVar(&c.opts.CA, "ca", "", "CA bundle PEM `file` for the server certificate (PECET_CA)")
	fs.StringVar(&c.opts.DevDir, "dev-dir", "", "dev folder `DIR` (PECET_DEV_DIR; default ./.pecet-dev when present)")
	fs.StringVar(&c.opts.Role, "as", defaultRole, "dev role certificate to use: client, gateway, officer or officer-2 (a second officer, for dual control)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "call `deadline`")
	fs.BoolVar(&c.json, "json", false, "machine-readable JSON output")
	return fs, c
}

// probe, when set, receives the flag set a command built instead of the
// command parsing its arguments (parse then stops the command), and whether
// the command takes arguments besides its flags: `pecet completion` learns
// the flags of a command with its own run function (table.go) from the code
// that defines them, so the scripts cannot drift from --help. Such a command
// must define all its flags and call parse or parseArgs before it does
// anything else.
var probe func(fs *flag.FlagSet, takesArgs bool)

// parse parses flags; it returns an exit code >= 0 when the command must stop.
// Arguments that are not flags are a usage error.
func parse(fs *flag.FlagSet, args []string) int {
	if code := parseFlags(fs, args, false); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage
	}
	return -1
}

// parseArgs parses flags and leaves the arguments after them in fs.Args();
// it returns an exit code >= 0 when the command must stop.
func parseArgs(fs *flag.FlagSet, args []string) int {
	return parseFlags(fs, args, true)
}

func parseFlags(fs *flag.FlagSet, args []string, takesArgs bool) int {
	if probe != nil {
		probe(fs, takesArgs)
		return exitOK
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if err := applyGlobals(fs); err != nil {
		return usageErr(fs, "%v", err)
	}
	return -1
}

func (c *conn) dial() (*client.Conn, context.Context, context.CancelFunc, error) {
	cc, err := client.Dial(c.opts)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	return cc, ctx, func() { cancel(); cc.Close() }, nil
}

// fail prints an error the way a person can act on and returns exit 4.
func fail(cmd string, err error) int {
	if st, ok := status.FromError(err); ok {
		fmt.Fprintf(os.Stderr, "pecet %s: %s: %s\n", cmd, st.Code(), st.Message())
	} else {
		fmt.Fprintf(os.Stderr, "pecet %s: %v\n", cmd, err)
	}
	return exitService
}

func usageErr(fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	return exitUsage
}

// readInput reads a file, or stdin for "-", at most limit bytes.
func readInput(path string, limit int64) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &tooLargeError{path: path, limit: limit}
	}
	return b, nil
}

// tooLargeError is readInput's refusal of an oversized input, a type so that
// a command that has a way around it (sign --digest) can say so.
type tooLargeError struct {
	path  string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.path, e.limit)
}

// writeOutput writes what carries no content (a detached signature, a
// CMS EnvelopedData, a time-stamp token, an evidence record, a report, a
// CSR) to a file (mode 0644), or stdout for "-" or "". What carries a
// document's content or a plaintext goes through writePrivateOutput
// (docs/security.md, "Files the CLI writes").
func writeOutput(path string, b []byte) error {
	if path == "" || path == "-" {
		_, err := os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644) //nolint:gosec // an ordinary user file (0644 less the umask), as openssl writes its -out
}

// writePrivateOutput writes a document's content or a plaintext (a
// verified or decrypted filing, an attached signature: they hold personal
// data) to a file created 0600, less the umask, or to stdout for "-" or
// "". The bytes go to a temporary file beside path that is renamed over
// it, so an existing file is replaced as before, a crash never leaves half
// a plaintext under the name, and an old 0644 file does not lend its mode
// (docs/security.md, "Files the CLI writes").
func writePrivateOutput(path string, b []byte) error {
	o, err := createOutput(path, 0o600)
	if err != nil {
		return err
	}
	if _, err := o.Write(b); err != nil {
		o.abort()
		return err
	}
	return o.commit()
}

// writeCMS writes a CMS message to a file or stdout, as PEM (-----BEGIN
// CMS-----) when asked, else DER; it returns what it wrote. A message that
// carries its content (an attached signature) is private
// (writePrivateOutput), any other public (writeOutput).
func writeCMS(path string, der []byte, asPEM, carriesContent bool) ([]byte, error) {
	if asPEM {
		der = pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: der})
	}
	if carriesContent {
		return der, writePrivateOutput(path, der)
	}
	return der, writeOutput(path, der)
}

// signatureCarriesContent says whether a CMS SignedData (DER) embeds its
// content; one that cannot be read is taken to embed it, so that a doubt
// never makes a document readable by others.
func signatureCarriesContent(der []byte) bool {
	sd, err := signer.Parse(der)
	return err != nil || !sd.Detached
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// versionFlag is a --version N flag: a key version is a uint32 in the API,
// so a larger number is a usage error, not a silently truncated version.
type versionFlag uint32

func (v *versionFlag) String() string { return strconv.FormatUint(uint64(*v), 10) }

func (v *versionFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("not a key version (0 to %d)", uint32(math.MaxUint32))
	}
	*v = versionFlag(n)
	return nil
}

// versionVar defines a --version flag.
func versionVar(fs *flag.FlagSet, usage string) *versionFlag {
	v := new(versionFlag)
	fs.Var(v, "version", usage)
	return v
}
