package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// directives reads a unit file into key → values (a key may repeat).
func directives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("not key=value: %q", line)
		}
		d[k] = append(d[k], v)
	}
	return d
}

func TestUnitHardening(t *testing.T) {
	d := directives(t, "pecetd.service")
	want := map[string]string{
		"Type":                     "notify",
		"User":                     "pecet",
		"ExecStart":                "/usr/local/bin/pecetd --config /etc/pecet/pecet.yaml",
		"ExecReload":               "/usr/local/bin/pecetd reload --pid $MAINPID", // e2e.TestSystemdExecReload runs it
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "3", // cmd/pecetd exitPIN
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ProtectHome":              "yes",
		"PrivateTmp":               "yes",
		"CapabilityBoundingSet":    "",
		"ReadWritePaths":           "-/var/log/pecet -/var/lib/pecet/tokens",
	}
	for k, v := range want {
		got, ok := d[k]
		if !ok || !slices.Contains(got, v) {
			t.Errorf("%s=%q, want %q", k, got, v)
		}
	}
	// Writable paths are the audit log and the token directory only.
	if n := len(d["ReadWritePaths"]); n != 1 {
		t.Errorf("%d ReadWritePaths lines, want 1", n)
	}
}

// TestUnitVerifies runs systemd-analyze verify on the unit, with ExecStart
// pointing at an executable that exists here (the tool checks it).
func TestUnitVerifies(t *testing.T) {
	// Skipped locally without it (apt-get install systemd), failed in CI.
	tool := testtool.Require(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("pecetd.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/pecetd", self)
	p := filepath.Join(t.TempDir(), "pecetd.service")
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", p).CombinedOutput()
	// verify prints warnings (an unknown key, a key in the wrong section)
	// and still exits 0: any output is a finding.
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
