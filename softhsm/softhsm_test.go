package softhsm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestFindModule(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "libfake.so")
	if err := os.WriteFile(fake, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(softhsm.ModuleEnv, fake)
	if got, err := softhsm.FindModule(); err != nil || got != fake {
		t.Errorf("FindModule with %s set = %q, %v", softhsm.ModuleEnv, got, err)
	}
	t.Setenv(softhsm.ModuleEnv, fake+".missing")
	if _, err := softhsm.FindModule(); err == nil || !strings.Contains(err.Error(), softhsm.ModuleEnv) {
		t.Errorf("FindModule with a missing override = %v", err)
	}
	t.Setenv(softhsm.ModuleEnv, "")
	got, err := softhsm.FindModule()
	switch {
	case errors.Is(err, softhsm.ErrNotInstalled):
		if !strings.Contains(err.Error(), "install softhsm2") {
			t.Errorf("error does not say what to install: %v", err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		if _, err := os.Stat(got); err != nil {
			t.Errorf("FindModule = %q: %v", got, err)
		}
	}
}

func TestSetupAndEnsureEnv(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	conf, err := softhsm.Setup(dir)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"directories.tokendir = " + filepath.Join(dir, "tokens"), "objectstore.backend = file", "log.level = ERROR"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("softhsm2.conf lacks %q:\n%s", want, body)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "tokens")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("tokens dir: %v %v", st, err)
	}

	t.Setenv("SOFTHSM2_CONF", "/somewhere/else.conf")
	if got, err := softhsm.EnsureEnv(dir); err != nil || got != "/somewhere/else.conf" {
		t.Errorf("EnsureEnv with SOFTHSM2_CONF set = %q, %v; want it kept", got, err)
	}
	t.Setenv("SOFTHSM2_CONF", "")
	if got, err := softhsm.EnsureEnv(dir); err != nil || got != conf || os.Getenv("SOFTHSM2_CONF") != conf {
		t.Errorf("EnsureEnv = %q, %v; env %q; want %q", got, err, os.Getenv("SOFTHSM2_CONF"), conf)
	}
}

func TestNewToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := softhsm.NewToken(t), softhsm.NewToken(t)
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateKey(ctx, "only-in-a", keystore.PurposeSign, keystore.ECP256); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetKey(ctx, "only-in-a"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Errorf("token b sees token a's key: %v", err)
	}
	cfg := softhsm.NewTokenConfig(t)
	if cfg.ModulePath == "" || cfg.TokenLabel == "" || cfg.PIN == "" || len(cfg.TokenLabel) > 32 {
		t.Errorf("NewTokenConfig = label %q module %q", cfg.TokenLabel, cfg.ModulePath)
	}
}
