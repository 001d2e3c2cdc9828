package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	info := func(v string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "github.com/pecet-hsm/pecet", Version: v}, Settings: settings}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	cases := []struct {
		name, linked string
		read         func() (*debug.BuildInfo, bool)
		want         Info
		str          string
	}{
		{"linker wins", "v1.2.0-3-gabcdef0-dirty", info("v1.1.0", rev), Info{Version: "v1.2.0-3-gabcdef0-dirty", Commit: "0123456789abcdef"}, "v1.2.0-3-gabcdef0-dirty (commit 0123456789abcdef, go"},
		{"module version", "", info("v1.1.0"), Info{Version: "v1.1.0"}, "v1.1.0 (go"},
		{"devel with VCS", "", info("(devel)", rev, dirty), Info{Version: "(devel)", Commit: "0123456789abcdef", Modified: true}, "(devel) (commit 0123456789abcdef modified, go"},
		{"empty module version", "", info(""), Info{Version: "(devel)"}, "(devel) (go"},
		{"no build info", "", none, Info{Version: "unknown"}, "unknown (go"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := get(c.linked, c.read)
			if got.Version != c.want.Version || got.Commit != c.want.Commit || got.Modified != c.want.Modified || got.Go == "" {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			if !strings.HasPrefix(got.String(), c.str) {
				t.Fatalf("String() = %q, want prefix %q", got.String(), c.str)
			}
		})
	}
}
