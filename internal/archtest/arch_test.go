package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	module = "github.com/pecet-hsm/pecet"
	pkcs11 = "github.com/miekg/pkcs11"
)

// libraries are the packages a program outside pecet may import
// (docs/architecture.md "The rules").
var libraries = []string{"keystore", "signer", "envelope", "tsa", "policy", "report", "softhsm", "client"}

// wiring is what a library never imports: the server, the daemon, the binaries.
var wiring = []string{"internal/server", "internal/daemon", "cmd/"}

// pkcs11Owners are the only packages that import PKCS#11 themselves.
var pkcs11Owners = []string{"keystore", "softhsm"}

// clientException is the one documented way PKCS#11 is linked into the pecet
// client (docs/architecture.md "The one exception"): `pecet bench
// --baseline` opens the token itself in cmd/pecet/bench.go. No other file of
// cmd/pecet may import these, and nothing else cmd/pecet imports may reach
// PKCS#11.
var clientException = struct {
	file    string
	imports []string
}{"bench.go", []string{"keystore", "softhsm"}}

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	Imports    []string
	Deps       []string
}

type graph map[string]*pkg

var errArch = errors.New("import rule broken")

// load runs `go list -deps -json ./...` from the module root: the packages
// built in a plain (release) build, test files excluded.
func load(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		g[p.ImportPath] = &p
	}
	if g[module+"/keystore"] == nil || g[pkcs11] == nil {
		t.Fatalf("go list found neither %s/keystore nor %s: %d packages", module, pkcs11, len(g))
	}
	return g
}

func rel(path string) string { return strings.TrimPrefix(path, module+"/") }

func inModule(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// reaches reports whether path is target or has it among its dependencies.
func (g graph) reaches(path, target string) bool {
	if path == target {
		return true
	}
	p := g[path]
	return p != nil && slices.Contains(p.Deps, target)
}

// check returns every broken rule of docs/architecture.md in g.
func check(g graph) []error {
	var errs []error
	for _, lib := range libraries {
		p := g[module+"/"+lib]
		if p == nil {
			errs = append(errs, fmt.Errorf("%w: library %s is not in the module", errArch, lib))
			continue
		}
		for _, d := range p.Deps {
			for _, w := range wiring {
				if inModule(d) && (rel(d) == w || strings.HasPrefix(rel(d), w)) {
					errs = append(errs, fmt.Errorf("%w: library %s depends on %s", errArch, lib, rel(d)))
				}
			}
		}
	}
	// PKCS#11 is imported by keystore and softhsm only; every other package
	// reaches it through them. A third-party package that wraps PKCS#11
	// (crypto11) counts as PKCS#11 itself.
	for path, p := range g {
		if !inModule(path) || slices.Contains(pkcs11Owners, rel(path)) {
			continue
		}
		for _, imp := range p.Imports {
			if !inModule(imp) && g.reaches(imp, pkcs11) {
				errs = append(errs, fmt.Errorf("%w: %s imports %s, which is PKCS#11: only keystore and softhsm may", errArch, rel(path), imp))
			}
		}
	}
	// The pecet client links PKCS#11 only through the exception.
	cli := g[module+"/cmd/pecet"]
	if cli == nil {
		return append(errs, fmt.Errorf("%w: cmd/pecet is not in the module", errArch))
	}
	for _, imp := range cli.Imports {
		if inModule(imp) && slices.Contains(clientException.imports, rel(imp)) {
			continue
		}
		if g.reaches(imp, pkcs11) {
			errs = append(errs, fmt.Errorf("%w: cmd/pecet links PKCS#11 through %s", errArch, imp))
		}
	}
	errs = append(errs, checkClientFiles(cli)...)
	return errs
}

// checkClientFiles checks that, of cmd/pecet's files, only the exception's
// file imports keystore or softhsm, and that it still does (otherwise the
// exception is gone and docs/architecture.md and this test must drop it).
func checkClientFiles(cli *pkg) []error {
	var errs []error
	used := false
	for _, name := range cli.GoFiles {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(cli.Dir, name), nil, parser.ImportsOnly)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: parsing cmd/pecet/%s: %w", errArch, name, err))
			continue
		}
		for _, is := range f.Imports {
			imp, err := strconv.Unquote(is.Path.Value)
			if err != nil || !inModule(imp) || !slices.Contains(clientException.imports, rel(imp)) {
				continue
			}
			if name != clientException.file {
				errs = append(errs, fmt.Errorf("%w: cmd/pecet/%s imports %s: only %s may (the documented exception)", errArch, name, rel(imp), clientException.file))
			}
			used = true
		}
	}
	if !used {
		errs = append(errs, fmt.Errorf("%w: cmd/pecet no longer imports %v: remove the exception from docs/architecture.md and this test", errArch, clientException.imports))
	}
	return errs
}

// TestImportRules: the packages of the module keep the import rules of
// docs/architecture.md.
func TestImportRules(t *testing.T) {
	for _, err := range check(load(t)) {
		t.Error(err)
	}
}

// clone copies g deeply enough for a case to change Imports, Deps and GoFiles.
func (g graph) clone() graph {
	c := graph{}
	for k, p := range g {
		q := *p
		q.Imports, q.Deps, q.GoFiles = slices.Clone(p.Imports), slices.Clone(p.Deps), slices.Clone(p.GoFiles)
		c[k] = &q
	}
	return c
}

// imports makes from import to, with to's dependencies, in g.
func (g graph) imports(from, to string) {
	p := g[from]
	p.Imports = append(p.Imports, to)
	p.Deps = append(p.Deps, to)
	p.Deps = append(p.Deps, g[to].Deps...)
}

// TestImportRulesCanFail: each rule finds a broken graph (the real graph
// with one import added), so TestImportRules can fail.
func TestImportRulesCanFail(t *testing.T) {
	base := load(t)
	if errs := check(base); len(errs) != 0 {
		t.Fatalf("the real graph breaks the rules: %v", errs)
	}
	for _, tc := range []struct {
		name   string
		change func(graph)
		want   string
	}{
		{"library imports the server", func(g graph) { g.imports(module+"/signer", module+"/internal/server") },
			"library signer depends on internal/server"},
		{"library reaches the daemon", func(g graph) { g.imports(module+"/policy", module+"/internal/daemon") },
			"library policy depends on internal/daemon"},
		{"library imports a binary", func(g graph) { g.imports(module+"/client", module+"/cmd/pecetd") },
			"library client depends on cmd/pecetd"},
		{"envelope imports PKCS#11", func(g graph) { g.imports(module+"/envelope", pkcs11) },
			"envelope imports " + pkcs11},
		{"wiring imports PKCS#11", func(g graph) { g.imports(module+"/internal/server", pkcs11) },
			"internal/server imports " + pkcs11},
		{"the client reaches keystore through a library", func(g graph) { g.imports(module+"/internal/audit", module+"/keystore") },
			"cmd/pecet links PKCS#11 through " + module + "/internal/audit"},
		{"the client imports PKCS#11", func(g graph) { g.imports(module+"/cmd/pecet", pkcs11) },
			"cmd/pecet links PKCS#11 through " + pkcs11},
		{"the exception is gone", func(g graph) {
			p := g[module+"/cmd/pecet"]
			p.GoFiles = slices.DeleteFunc(p.GoFiles, func(f string) bool { return f == clientException.file })
		}, "no longer imports"},
		{"another client file imports keystore", func(g graph) {
			dir := t.TempDir()
			for name, src := range map[string]string{
				"bench.go": "package main\nimport _ \"" + module + "/keystore\"\n",
				"sign.go":  "package main\nimport _ \"" + module + "/softhsm\"\n",
			} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			p := g[module+"/cmd/pecet"]
			p.Dir, p.GoFiles = dir, []string{"bench.go", "sign.go"}
		}, "cmd/pecet/sign.go imports softhsm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := base.clone()
			tc.change(g)
			errs := check(g)
			found := false
			for _, err := range errs {
				found = found || (errors.Is(err, errArch) && strings.Contains(err.Error(), tc.want))
			}
			if !found {
				t.Errorf("want an error with %q, got %v", tc.want, errs)
			}
		})
	}
}
