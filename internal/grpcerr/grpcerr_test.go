package grpcerr

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const module = "github.com/pecet-hsm/pecet/"

// reaching are the packages whose errors can reach a gRPC handler's return
// (internal/server imports them), relative to the module root.
var reaching = []string{
	"signer", "envelope", "tsa", "ers", "policy", "keystore", "cades",
	"internal/audit", "internal/dualcontrol", "internal/authz", "internal/ratelimit",
	"internal/csr", "internal/config",
}

// notMapped are the exported sentinels deliberately not in the table, with
// the reason: each would be Internal if it ever reached a call.
var notMapped = map[string]string{
	"envelope.ErrClosed":            "a Write after Close of an EncryptWriter: a programming error, Internal is right",
	"tsa.ErrMalformed":              "parsing a TSA's response or token: the pecet CLI; the server builds responses and only reads its own for metrics",
	"tsa.ErrNotGranted":             "a response without a token: the pecet CLI's client side",
	"tsa.ErrNoImprint":              "verifying a token without the data: the pecet CLI's client side",
	"policy.ErrFetch":               "a failed CRL or OCSP fetch becomes a verdict (revocation unknown), never a call error",
	"policy.ErrMalformedQC":         "ValidateCertificate turns it into a MALFORMED verdict",
	"policy.ErrKeyTooLarge":         "an RSA key above 8192 bits becomes a verdict (WEAK_ALGORITHM), never a call error",
	"policy.ErrFetchRefused":        "a fetch the fetch rules refuse becomes a verdict (revocation unknown, a fixed phrase)",
	"policy.ErrTrustedListOlder":    "start-up and reload only: a trusted list older than the one in force is refused, the old one stays",
	"policy.ErrTrustedListStale":    "start-up and reload only: an outdated trusted list does not replace the one in force",
	"policy.ErrTrustedListFetch":    "start-up and reload only: fetching a trusted list from its URL",
	"policy.ErrLOTL":                "start-up and reload only: the EU list of lists in the config",
	"policy.ErrLOTLTerritory":       "start-up and reload only: the configured territory is not in the list of lists",
	"policy.ErrLOTLPivot":           "start-up and reload only: following pivot lists of lists",
	"policy.ErrInvalidPolicy":       "start-up only: policies in the config",
	"policy.ErrMalformedSuite":      "start-up only: the algorithm suite in the config",
	"policy.ErrMalformedXML":        "start-up only: loading a trusted list",
	"policy.ErrTrustedList":         "start-up only: loading a trusted list",
	"policy.ErrTrustedListSig":      "start-up only: loading a trusted list",
	"policy.ErrTrustedListTooLarge": "start-up only: loading a trusted list",
	"keystore.ErrModule":            "start-up only: loading the PKCS#11 module",
	"keystore.ErrTokenNotFound":     "start-up only: finding the token",
	"keystore.ErrTokenExists":       "token initialisation (pecet hsm init), not the server",
	"keystore.ErrInvalidAppState":   "a programming error in a fixed app-state name, Internal is right",
	"audit.ErrResume":               "start-up only: the log does not match the token's checkpoint",
	"audit.ErrIncomplete":           "pecet audit verify only",
	"audit.ErrMalformed":            "pecet audit verify only",
	"authz.ErrRevoked":              "fails the TLS handshake, before any call",
	"authz.ErrCRLUnverified":        "fails the TLS handshake, before any call",
	"csr.ErrSubject":                "CreateCSR answers InvalidArgument with the parser's message itself",
	"csr.ErrSAN":                    "CreateCSR answers InvalidArgument with the parser's message itself",
	"config.ErrInvalid":             "start-up only: config",
	"config.ErrPINFileMode":         "start-up only: config",
	"config.ErrPKCS11URI":           "start-up only: config",
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if parent := filepath.Dir(dir); parent != dir {
			dir = parent
			continue
		}
		t.Fatal("no go.mod above the test")
	}
}

// sentinels parses a package's non-test files and returns its exported
// package-level variables named Err*, as "pkg.ErrX".
func sentinels(t *testing.T, root, rel string) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(root, rel, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no Go files (%v)", rel, err)
	}
	var out []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, s := range gd.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if strings.HasPrefix(n.Name, "Err") && n.IsExported() {
						out = append(out, f.Name.Name+"."+n.Name)
					}
				}
			}
		}
	}
	return out
}

// mapped parses grpcerr.go and returns the "pkg.ErrX" selectors of the
// module's packages it names.
func mapped(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "grpcerr.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]bool{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if strings.HasPrefix(p, module) {
			ours[filepath.Base(p)] = true
		}
	}
	out := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && ours[x.Name] && strings.HasPrefix(sel.Sel.Name, "Err") {
				out[x.Name+"."+sel.Sel.Name] = true
			}
		}
		return true
	})
	return out
}

// TestEverySentinelMapped: every exported Err* of a package whose errors
// reach the server is in the table, or in notMapped with a reason; and
// notMapped names no sentinel that is gone or mapped after all.
func TestEverySentinelMapped(t *testing.T) {
	root := moduleRoot(t)
	inTable := mapped(t)
	seen := map[string]bool{}
	for _, rel := range reaching {
		for _, s := range sentinels(t, root, rel) {
			seen[s] = true
			_, listed := notMapped[s]
			switch {
			case inTable[s] && listed:
				t.Errorf("%s is mapped and also listed as not mapped", s)
			case !inTable[s] && !listed:
				t.Errorf("%s (%s) is not mapped in grpcerr: map it to a status and message, or list it in notMapped with the reason", s, rel)
			}
		}
	}
	for s := range notMapped {
		if !seen[s] {
			t.Errorf("notMapped lists %s, which no package declares", s)
		}
	}
	for s := range inTable {
		if !seen[s] {
			t.Errorf("grpcerr maps %s from a package not in reaching", s)
		}
	}
}

// TestTableOrder: every mapped sentinel, wrapped as libraries wrap it,
// gets its own code and message (no earlier row catches it), and the
// message never carries the wrapped detail.
func TestTableOrder(t *testing.T) {
	for _, m := range table {
		t.Run(m.err.Error(), func(t *testing.T) {
			err := Status(fmt.Errorf("op on /secret/path: %w", m.err))
			st := status.Convert(err)
			if st.Code() != m.code || st.Message() != m.msg {
				t.Fatalf("got %s %q, want %s %q", st.Code(), st.Message(), m.code, m.msg)
			}
			if strings.Contains(st.Message(), "/secret/path") {
				t.Fatalf("the message leaks the cause: %q", st.Message())
			}
		})
	}
}

// TestStatus: statuses pass through, unknown errors are a plain Internal.
func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"nil", nil, codes.OK, ""},
		{"status passes through", status.Error(codes.NotFound, "x"), codes.NotFound, "x"},
		{"unknown is Internal", errors.New("pkcs11: 0x30 at /dev/secret"), codes.Internal, "internal error; the server log has the details"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(Status(tc.err))
			if st.Code() != tc.code || st.Message() != tc.msg {
				t.Fatalf("got %s %q", st.Code(), st.Message())
			}
		})
	}
	if got := slices.IndexFunc(table, func(m mapping) bool { return m.msg == "" }); got >= 0 {
		t.Errorf("row %d has no message", got)
	}
}
