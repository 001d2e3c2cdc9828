package softhsm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"

	"github.com/pecet-hsm/pecet/keystore"
)

// testEnv is the one SoftHSM configuration of a test binary. SoftHSM reads
// SOFTHSM2_CONF once per process, so it cannot be per test; this is the
// package's only mutable state, set once.
var testEnv struct {
	once   sync.Once
	module string
	err    error
}

func setupTestEnv() (module string, err error) {
	testEnv.once.Do(func() {
		if testEnv.module, testEnv.err = FindModule(); testEnv.err != nil {
			return
		}
		// A directory of its own, not t.TempDir: it must outlive the test
		// that happens to come first. Tokens are a few kilobytes each.
		dir, err := os.MkdirTemp("", "pecet-softhsm-")
		if err != nil {
			testEnv.err = err
			return
		}
		conf, err := Setup(dir)
		if err != nil {
			testEnv.err = err
			return
		}
		// Unconditionally: tests must never write to a developer's real
		// token directory that a pre-set SOFTHSM2_CONF may name.
		testEnv.err = os.Setenv("SOFTHSM2_CONF", conf)
	})
	return testEnv.module, testEnv.err
}

// NewTokenConfig initialises a fresh token with a unique label and random
// PINs and returns the Config to open it. No Store is left open, so a test
// can open its own (or fail to, with a wrong PIN). Without SoftHSM the test
// is skipped, except under CI (the CI variable set), where it fails.
func NewTokenConfig(t testing.TB) keystore.Config {
	t.Helper()
	module, err := setupTestEnv()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI is set: SoftHSM2 is required)", err)
		}
		t.Skipf("%v (skipping; set CI to make this fatal)", err)
	}
	label := "t-" + randHex(t, 12) // ≤ 32 bytes, unique per test
	pin := randHex(t, 8)
	if err := keystore.InitToken(module, label, randHex(t, 8), pin); err != nil {
		t.Fatalf("softhsm: init token: %v", err)
	}
	return keystore.Config{ModulePath: module, TokenLabel: label, PIN: pin}
}

// NewToken returns a logged-in Store on a fresh token, closed when the test
// ends.
func NewToken(t testing.TB) *keystore.Store {
	t.Helper()
	cfg := NewTokenConfig(t)
	s, err := keystore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("softhsm: open token: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("softhsm: close token: %v", err)
		}
	})
	return s
}

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
