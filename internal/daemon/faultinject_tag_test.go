//go:build faultinject

package daemon

import (
	"strings"
	"testing"
	"time"
)

// TestParseFaults runs only in a -tags faultinject build; the untagged
// TestFaultHookOnlyWithTag runs it that way, so CI compiles the hook too.
func TestParseFaults(t *testing.T) {
	tests := []struct {
		spec  string
		every time.Duration
		kinds string
		err   string
	}{
		{"3s", 3 * time.Second, "session,sessions2,remove,slow", ""},
		{"500ms:remove,slow", 500 * time.Millisecond, "remove,slow", ""},
		{"2s:session", 2 * time.Second, "session", ""},
		{"50ms", 0, "", "at least 100ms"},
		{"soon", 0, "", "INTERVAL"},
		{"3s:unplug", 0, "", `unknown fault kind "unplug"`},
	}
	for _, tc := range tests {
		every, kinds, err := parseFaults(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.spec, err, tc.err)
			}
			continue
		}
		var names []string
		for _, k := range kinds {
			names = append(names, k.name)
		}
		if err != nil || every != tc.every || strings.Join(names, ",") != tc.kinds {
			t.Errorf("%q: %v %v %v, want %v %s", tc.spec, every, names, err, tc.every, tc.kinds)
		}
	}
}
