package testtool

import (
	"os"
	"path/filepath"
	"testing"
)

// Vectors returns the path of parts inside the outside test material
// (NIST PKITS, Wycheproof, OpenSSL's fuzz corpora, trusted lists, the ETSI
// algorithm suite): $PECET_VECTORS when set, else the folder shared/vectors
// beside the checkout (the module root's parent), where CI and every
// workplace of this project have it. A missing folder fails the test: the
// vectors are part of the suite, and a test that skips for want of them
// would pass without testing anything.
func Vectors(t testing.TB, parts ...string) string {
	t.Helper()
	root, err := vectorsRoot()
	if err != nil {
		t.Fatalf("test vectors: %v", err)
	}
	p := filepath.Join(append([]string{root}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test vectors: %v (the shared vectors stand beside the checkout in ../shared/vectors; PECET_VECTORS names another folder)", err)
	}
	return p
}

// LookupVectors is Vectors for material the suite may run without (the
// ETSI report schema, not yet among the vectors): the path and whether it
// is there, never failing the test.
func LookupVectors(parts ...string) (string, bool) {
	root, err := vectorsRoot()
	if err != nil {
		return "", false
	}
	p := filepath.Join(append([]string{root}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		return "", false
	}
	return p, true
}

// vectorsRoot is $PECET_VECTORS, else shared/vectors beside the checkout.
func vectorsRoot() (string, error) {
	if root := os.Getenv("PECET_VECTORS"); root != "" {
		return root, nil
	}
	mod, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(mod), "shared", "vectors"), nil
}

// moduleRoot walks up from the working directory (a package's folder under
// go test) to the folder holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
