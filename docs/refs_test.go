package docs

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The comments and Markdown of the repository point only to what is in it:
// a file they name exists, a section they name (a Markdown file's name
// followed by the quoted heading) is a heading of that file, and nothing
// points to a design document or an issue tracker the reader does not have
// (docs/ and README.md carry the design; the commit log the history).

var (
	// A file named by path from the root or from the referring file's
	// folder: docs/security.md, keystore/doc.go, doc.go.
	fileRef = regexp.MustCompile(`(?:^|[\s("'` + "`" + `])((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(?:go|md|proto|sh))\b`)
	// A section of a Markdown file: docs/operations.md "Configure". A
	// section is a heading or a bold list item ("- **The audit key.**").
	sectionRef = regexp.MustCompile(`((?:docs/)?[A-Za-z0-9_-]+\.md)\s*(?:\n\s*(?://|#)?\s*)?(?:,\s*)?"([^"\n]+)"`)
	// A pointer to what is not in the repository.
	outsideRef = regexp.MustCompile(`(?i)\bDESIGN\.md\b|\bissues? #?\d+`)
	heading    = regexp.MustCompile(`(?m)^(?:#{1,6} +(.+?)\s*|\s*- \*\*(.+?)\*\*.*)$`)
	urlRe      = regexp.MustCompile(`[a-z]+://\S+`)
)

// source is one text to check: the comments of a Go file, or a Markdown file.
type source struct {
	path string // relative to the repository root
	text string
}

func repoSources(t *testing.T, root string) []source {
	t.Helper()
	var out []source
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "bin", ".pecet-dev", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(p, ".go"):
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, g := range f.Comments {
				for _, c := range g.List {
					b.WriteString(c.Text)
					b.WriteByte('\n')
				}
			}
			out = append(out, source{rel, b.String()})
		case strings.HasSuffix(p, ".md"), strings.HasSuffix(p, ".proto"), d.Name() == "Makefile", strings.HasSuffix(p, ".sh"):
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, source{rel, string(b)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 100 {
		t.Fatalf("only %d sources under %s", len(out), root)
	}
	return out
}

// resolve finds a referenced file: relative to the referring file's folder
// (a package's own files), else to the repository root, else (a .proto
// import) to api/.
func resolve(root, from, name string) (string, bool) {
	if strings.HasPrefix(name, "google/protobuf/") {
		return name, true // protobuf's well-known types, built into the compiler
	}
	for _, p := range []string{filepath.Join(root, filepath.Dir(from), name), filepath.Join(root, name), filepath.Join(root, "api", name)} {
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// checkRefs reports every reference in src that does not hold in root.
func checkRefs(root string, src source) []string {
	var bad []string
	text := urlRe.ReplaceAllString(src.text, "")
	for _, m := range outsideRef.FindAllString(text, -1) {
		bad = append(bad, "points outside the repository: "+m)
	}
	for _, m := range fileRef.FindAllStringSubmatch(text, -1) {
		name := m[1]
		if strings.Contains(name, "..") || strings.HasPrefix(name, ".") || strings.HasPrefix(filepath.Base(name), "_") {
			continue
		}
		if _, ok := resolve(root, src.path, name); !ok {
			bad = append(bad, "names a file that is not in the repository: "+name)
		}
	}
	for _, m := range sectionRef.FindAllStringSubmatch(text, -1) {
		p, ok := resolve(root, src.path, m[1])
		if !ok {
			continue // reported above
		}
		b, err := os.ReadFile(p)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		found := false
		for _, h := range heading.FindAllStringSubmatch(string(b), -1) {
			if strings.HasPrefix(strings.Trim(h[1]+h[2], "`"), m[2]) {
				found = true
				break
			}
		}
		if !found {
			bad = append(bad, "names a section "+m[1]+" does not have: \""+m[2]+"\"")
		}
	}
	return bad
}

// TestReferencesHold: no comment or Markdown file in the repository names
// a file that is not in it, a section its file does not have, a design document
// or an issue number.
func TestReferencesHold(t *testing.T) {
	for _, src := range repoSources(t, "..") {
		for _, b := range checkRefs("..", src) {
			t.Errorf("%s: %s", src.path, b)
		}
	}
}

// TestReferenceChecker: the checker finds each kind of broken reference and
// passes the good ones (it must be able to fail).
func TestReferenceChecker(t *testing.T) {
	for _, tc := range []struct {
		name, from, text string
		bad              int
	}{
		{"design doc", "keystore/keystore.go", `Purposes, as named in DESIGN.md "Keys".`, 2},
		{"issue", "tsa/x_test.go", "the user's path from issue 4", 1},
		{"issue item", "signer/x_test.go", "refuses SHA-1 (issue 13 item 2)", 1},
		{"missing file", "policy/x.go", "see docs/nothing.md", 1},
		{"missing sibling", "signer/x.go", "the parser in noparse.go", 1},
		{"missing section", "policy/x.go", `docs/security.md "No such heading"`, 1},
		{"section on the next comment line", "policy/x.go", "docs/security.md\n// \"No such heading\"", 1},
		{"good file", "policy/x.go", "see docs/security.md and README.md", 0},
		{"good sibling", "signer/x.go", "the parser in parse.go", 0},
		{"good section", "policy/x.go", `docs/security.md "Per-call overrides"`, 0},
		{"good README section", "cmd/pecet/x.go", `README.md "Certificate policy"`, 0},
		{"import path", "policy/x.go", "crypto/rsa and golang.org/x/crypto/cryptobyte", 0},
		{"URL", "policy/x.go", "https://example.com/DESIGN.md and https://example.com/a/b.go", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bad := checkRefs("..", source{tc.from, tc.text}); len(bad) != tc.bad {
				t.Errorf("%q: %d findings %q, want %d", tc.text, len(bad), bad, tc.bad)
			}
		})
	}
}
