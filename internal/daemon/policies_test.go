package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// TestBuildEngineCZ loads a cz-qualified policy from the real Czech trusted
// list, with its signer certificate configured, and lists its anchors.
func TestBuildEngineCZ(t *testing.T) {
	dir := t.TempDir()
	list := testtool.Vectors(t, "trusted-lists", "CZ.xml")
	signer := listSignersPEM(t, list, filepath.Join(dir, "cz-signer.pem"))
	cfg := &config.Config{DefaultPolicy: "cz-qualified", Policies: map[string]config.Policy{
		"cz-qualified": {
			TrustedList:          &config.TrustedList{File: list, Signer: signer},
			Algorithms:           config.Algorithms{Suite: testtool.Vectors(t, "etsi-ts-119-312-crypto-suite.xml"), MinRSABits: 2048, MinECBits: 256},
			RequiredQCStatements: []string{"compliance"},
			Revocation:           config.Revocation{Mode: "require", FetchCRLs: true},
		},
	}}
	e, err := BuildEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Describe("", time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, a := range info.Anchors {
		sources = append(sources, a.Source)
	}
	all := strings.Join(sources, "\n")
	for _, want := range []string{"PostSignum", "I.CA", "eIdentity"} {
		if !strings.Contains(all, want) {
			t.Errorf("no %s anchor in %s", want, all)
		}
	}

	// The broken list is refused at start-up, naming the file.
	cfg.Policies["cz-qualified"] = config.Policy{TrustedList: &config.TrustedList{File: testtool.Vectors(t, "trusted-lists", "CZ_broken-sig.xml"), Signer: signer}}
	if _, err := BuildEngine(cfg); err == nil || !strings.Contains(err.Error(), "CZ_broken-sig.xml") {
		t.Fatalf("broken list: %v", err)
	}
}

// TestBuildEngineOverridesAndAlgorithms: a policy without allow_overrides
// accepts extra CRLs only; the trust.anchors "default" policy too; an
// explicit list replaces the default; every policy has the algorithm
// defaults (docs/security.md "Per-call overrides", "Algorithms").
func TestBuildEngineOverridesAndAlgorithms(t *testing.T) {
	_, anchors := writeCA(t, "overrides test CA", time.Now())
	none := []string{}
	all := []string{"revocation", "anchors", "crls"}
	cfg := &config.Config{DefaultPolicy: "plain", Policies: map[string]config.Policy{
		"plain":  {Anchors: []string{anchors}},
		"closed": {Anchors: []string{anchors}, AllowOverrides: &none},
		"open":   {Anchors: []string{anchors}, AllowOverrides: &all},
	}}
	e, err := BuildEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	simple, err := BuildEngine(&config.Config{Trust: config.Trust{Anchors: []string{anchors}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		e    *policy.Engine
		name string
		want string
	}{
		{e, "plain", "crls"},
		{e, "closed", ""},
		{e, "open", "revocation anchors crls"},
		{simple, "default", "crls"},
	} {
		info, err := tc.e.Describe(tc.name, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range info.AllowOverrides {
			got = append(got, string(o))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: allow_overrides %q, want %q", tc.name, got, tc.want)
		}
		if !strings.Contains(info.Algorithms, "RSA >= 2048") {
			t.Errorf("%s: algorithms %q", tc.name, info.Algorithms)
		}
	}
}

// listSignersPEM writes the certificates in a trusted list's (or LOTL's)
// own KeyInfo to path, as a policy's trusted_list.signer (or lotl_signer)
// names them, and returns path.
func listSignersPEM(t *testing.T, list, path string) string {
	t.Helper()
	data, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	signers, err := policy.TrustedListSigners(data)
	if err != nil || len(signers) == 0 {
		t.Fatalf("%s: no signer: %v", list, err)
	}
	if err := devca.WriteCerts(path, signers...); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCA makes a test CA valid from now and writes its certificate to a
// new folder, as a config's anchors or client_ca name it.
func writeCA(t *testing.T, cn string, now time.Time) (ca *devca.CA, pem string) {
	t.Helper()
	ca, err := devca.NewCA(cn, now)
	if err != nil {
		t.Fatal(err)
	}
	pem = filepath.Join(t.TempDir(), "ca.pem")
	if err := devca.WriteCerts(pem, ca.Cert); err != nil {
		t.Fatal(err)
	}
	return ca, pem
}
