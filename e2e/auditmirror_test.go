package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// TestAuditMirrorDefault: pecetd on the dev config (audit.mirror unset:
// errors) writes a denial and the log's own lines to stderr, and nothing
// of a successful signature, whose lines are in the file.
func TestAuditMirrorDefault(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	in := write(t, work, "filing.xml", "<PRIHL/>")
	d.mustRun(t, 0, "sign", "--key", "client-sign", "--in", in, "--out", filepath.Join(work, "f.p7s"))
	d.mustRun(t, 4, "sign", "--as", "gateway", "--key", "client-sign", "--in", in, "--out", filepath.Join(work, "g.p7s"))
	d.stop(t)
	var mirrored []string
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(line, `"msg":"audit"`) {
			mirrored = append(mirrored, line)
		}
	}
	has := func(parts ...string) bool {
		for _, l := range mirrored {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				return true
			}
		}
		return false
	}
	sign := `"rpc":"` + pecetv1.SignService_Sign_FullMethodName + `"`
	for _, want := range [][]string{{`"phase":"denied"`, sign}, {`"phase":"start"`}, {`"phase":"stop"`}, {`"phase":"checkpoint"`}} {
		if !has(want...) {
			t.Errorf("stderr lacks the audit record %v:\n%s", want, strings.Join(mirrored, "\n"))
		}
	}
	if has(`"phase":"begin"`, sign) || has(`"phase":"end"`, sign, `"outcome":"ok"`) {
		t.Errorf("a successful Sign was mirrored at the default level:\n%s", strings.Join(mirrored, "\n"))
	}
	if log := d.verifyAudit(t, filepath.Join(d.dir, "audit.log")); !strings.Contains(log, "OK") {
		t.Errorf("audit verify: %s", log)
	}
}
