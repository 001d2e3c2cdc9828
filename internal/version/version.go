// Package version says which build of pecet is running: the release or
// `git describe` string and the VCS commit, for `pecet version`,
// `pecetd --version` and the start-up log line.
//
// `make build` sets Version with -ldflags -X from `git describe --always
// --dirty`, because builds here run with -buildvcs=false (GOFLAGS) and the
// toolchain then records no commit. Without it the module version and the
// VCS settings from runtime/debug.ReadBuildInfo are used: `go install
// …@v1.2.3` gives "v1.2.3", a plain `go build` in a checkout gives
// "(devel)" and the commit when VCS stamping is on.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set by the linker (-X github.com/pecet-hsm/pecet/internal/version.Version=…).
var Version string

// Info is what a build knows about itself.
type Info struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// Get returns the build's version information.
func Get() Info {
	return get(Version, debug.ReadBuildInfo)
}

func get(linked string, read func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: linked, Go: runtime.Version()}
	bi, ok := read()
	if !ok {
		if i.Version == "" {
			i.Version = "unknown"
		}
		return i
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Commit = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	return i
}

// String is one line: "v0.3.0-4-gabc1234-dirty (commit abc1234…, go1.26.8)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.Commit != "" {
		s += "commit " + i.Commit
		if i.Modified {
			s += " modified"
		}
		s += ", "
	}
	return s + i.Go + ")"
}
