package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	module = "github.com/pecet-hsm/pecet"
	pkcs11 = "github.com/miekg/pkcs11"
)

// libraries are the packages a program outside pecet may import
// (docs/architecture.md "The rules").
var libraries = []string{"keystore", "signer", "envelope", "tsa", "ers", "cades", "policy", "xmldsig", "report", "softhsm", "client"}

// wiring is what a library never imports: the server, the daemon, the binaries.
var wiring = []string{"internal/server", "internal/daemon", "cmd/"}

// pkcs11Owners are the only packages that import PKCS#11 themselves; the
// test-only internal/faultinject too, to fail the token on purpose.
var pkcs11Owners = []string{"keystore", "softhsm", "internal/faultinject"}

// testOnly are packages for tests (and the soak's -tags faultinject
// pecetd): no binary's release build reaches them (rule 7).
var testOnly = []string{"internal/faultinject"}

// binaries are the release programs.
var binaries = []string{"cmd/pecetd", "cmd/pecet"}

// sharedLeaves are internal packages the libraries share; they import nothing
// of the module, so a library that imports one stays free of the wiring
// (docs/architecture.md, rule 4).
var sharedLeaves = []string{"internal/cms"}

// confined are packages that may import of the module only the packages
// listed: xmldsig is XML and XMLDSig alone, and policy builds the trusted
// lists on it, never the other way round (docs/architecture.md, rule 5).
var confined = map[string][]string{
	"xmldsig": {"internal/cms"},
}

// importedOnlyBy are packages that only the listed packages (or folders,
// ending in "/") may import directly: the dev CA is for pecetd --dev and the
// hand-run scripts; tests import it too, and load leaves test files out
// (docs/architecture.md, rule 6).
var importedOnlyBy = map[string][]string{
	"internal/devca": {"internal/devmode", "scripts/"},
}

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	Dir        string
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
	for _, leaf := range sharedLeaves {
		p := g[module+"/"+leaf]
		if p == nil {
			errs = append(errs, fmt.Errorf("%w: shared package %s is not in the module", errArch, leaf))
			continue
		}
		for _, d := range p.Deps {
			if inModule(d) {
				errs = append(errs, fmt.Errorf("%w: shared package %s depends on %s", errArch, leaf, rel(d)))
			}
		}
	}
	for c, allowed := range confined {
		p := g[module+"/"+c]
		if p == nil {
			errs = append(errs, fmt.Errorf("%w: package %s is not in the module", errArch, c))
			continue
		}
		for _, d := range p.Deps {
			if inModule(d) && !slices.Contains(allowed, rel(d)) {
				errs = append(errs, fmt.Errorf("%w: %s depends on %s; it may import only %v of the module", errArch, c, rel(d), allowed))
			}
		}
	}
	for target, allowed := range importedOnlyBy {
		if g[module+"/"+target] == nil {
			errs = append(errs, fmt.Errorf("%w: package %s is not in the module", errArch, target))
			continue
		}
		for path, p := range g {
			if !inModule(path) || !slices.Contains(p.Imports, module+"/"+target) {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || rel(path) == a || (strings.HasSuffix(a, "/") && strings.HasPrefix(rel(path), a))
			}
			if !ok {
				errs = append(errs, fmt.Errorf("%w: %s imports %s; only %v may", errArch, rel(path), target, allowed))
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
	for _, b := range binaries {
		p := g[module+"/"+b]
		if p == nil {
			errs = append(errs, fmt.Errorf("%w: %s is not in the module", errArch, b))
			continue
		}
		for _, to := range testOnly {
			if g.reaches(p.ImportPath, module+"/"+to) {
				errs = append(errs, fmt.Errorf("%w: the release %s links the test-only %s", errArch, b, to))
			}
		}
	}
	// The pecet client links no PKCS#11: it talks to pecetd over gRPC, and
	// its bench baseline runs pecetd bench-token.
	cli := g[module+"/cmd/pecet"]
	if cli == nil {
		return append(errs, fmt.Errorf("%w: cmd/pecet is not in the module", errArch))
	}
	for _, imp := range cli.Imports {
		if g.reaches(imp, pkcs11) {
			errs = append(errs, fmt.Errorf("%w: cmd/pecet links PKCS#11 through %s", errArch, imp))
		}
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

// clone copies g deeply enough for a case to change Imports and Deps.
func (g graph) clone() graph {
	c := graph{}
	for k, p := range g {
		q := *p
		q.Imports, q.Deps = slices.Clone(p.Imports), slices.Clone(p.Deps)
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
		{"shared package imports a library", func(g graph) { g.imports(module+"/internal/cms", module+"/signer") },
			"shared package internal/cms depends on signer"},
		{"xmldsig imports policy", func(g graph) { g.imports(module+"/xmldsig", module+"/policy") },
			"xmldsig depends on policy"},
		{"the daemon imports the dev CA", func(g graph) { g.imports(module+"/internal/daemon", module+"/internal/devca") },
			"internal/daemon imports internal/devca"},
		{"the client imports the dev CA", func(g graph) { g.imports(module+"/cmd/pecet", module+"/internal/devca") },
			"cmd/pecet imports internal/devca"},
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
		{"pecetd links fault injection", func(g graph) { g.imports(module+"/cmd/pecetd", module+"/internal/faultinject") },
			"the release cmd/pecetd links the test-only internal/faultinject"},
		{"the client links fault injection", func(g graph) { g.imports(module+"/cmd/pecet", module+"/internal/faultinject") },
			"the release cmd/pecet links the test-only internal/faultinject"},
		{"the client opens the token itself", func(g graph) { g.imports(module+"/cmd/pecet", module+"/keystore") },
			"cmd/pecet links PKCS#11 through " + module + "/keystore"},
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

// TestNoFaultInjectionInRelease: the token faults of the tests and the soak
// (internal/faultinject) are in no release build: keystore declares none
// of them, and neither binary's release build reaches the test-only
// package (docs/architecture.md, rule 7). The ELF check of the built
// pecetd is e2e TestReleaseBinaryHasNoFaultHook.
func TestNoFaultInjectionInRelease(t *testing.T) {
	// The binaries' side is check's rule 7 (TestImportRules); here keystore.
	ks := load(t)[module+"/keystore"]
	fset := token.NewFileSet()
	for _, name := range ks.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(ks.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && strings.Contains(d.Name.Name, "Fault") {
					t.Errorf("keystore/%s declares func %s: fault injection belongs in internal/faultinject", name, d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if ts, ok := s.(*ast.TypeSpec); ok && strings.Contains(ts.Name.Name, "Fault") {
						t.Errorf("keystore/%s declares type %s: fault injection belongs in internal/faultinject", name, ts.Name.Name)
					}
				}
			}
		}
	}
}
