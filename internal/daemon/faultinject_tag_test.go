//go:build faultinject

package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/keystore"
)

// TestFaultEnv runs only in a -tags faultinject build; the untagged
// TestFaultHookOnlyWithTag runs it that way, so CI compiles the hook too.
// A PECET_FAULTS that faultinject.ParseSchedule refuses stops pecetd
// before it opens the token (the parser's own cases are
// faultinject.TestParseSchedule).
func TestFaultEnv(t *testing.T) {
	for _, spec := range []string{"50ms", "soon", "3s:unplug"} {
		t.Setenv(EnvFaults, spec)
		_, err := openWithFaults(context.Background(), keystore.Config{}, nil)
		if !errors.Is(err, faultinject.ErrSchedule) || !strings.Contains(err.Error(), EnvFaults) {
			t.Errorf("%s=%q: %v, want a schedule error naming %s", EnvFaults, spec, err, EnvFaults)
		}
	}
}
