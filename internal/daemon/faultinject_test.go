package daemon

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFaultHookOnlyWithTag: the fault hook (faultinject.go) is compiled
// into pecetd only with -tags faultinject, so a release build cannot be
// made to fail its token by an environment variable. e2e
// TestReleaseBinaryHasNoFaultHook checks the built binary itself. It also
// builds and vets the package with the tag and runs the tagged
// TestFaultEnv, so that a change elsewhere cannot break the soak's
// build unnoticed.
func TestFaultHookOnlyWithTag(t *testing.T) {
	files := func(tags ...string) string {
		args := append([]string{"list"}, tags...)
		out, err := exec.Command("go", append(args, "-f", "{{join .GoFiles \" \"}}", ".")...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return " " + strings.TrimSpace(string(out)) + " "
	}
	if release := files(); strings.Contains(release, " faultinject.go ") || !strings.Contains(release, " daemon.go ") {
		t.Errorf("files of a release build: %s", release)
	}
	if tagged := files("-tags", "faultinject"); !strings.Contains(tagged, " faultinject.go ") {
		t.Errorf("files of a -tags faultinject build: %s", tagged)
	}
	if testing.Short() {
		return
	}
	out, err := exec.Command("go", "test", "-tags", "faultinject", "-count=1", "-run", "^TestFaultEnv$", "-v", ".").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFaultEnv") {
		t.Errorf("go test -tags faultinject: %v\n%s", err, out)
	}
}
