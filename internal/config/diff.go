package config

import (
	"reflect"
	"slices"
	"strings"
)

// LiveSections are the top-level sections a reload applies without a
// restart (docs/operations.md "Reloading the configuration"). Every other
// section (listen addresses and TLS, the token, the audit file, limits and
// envelope bounds, and any section added later until it is listed here) is
// read at start only: a reload that changes it logs that it needs a
// restart and otherwise ignores the change.
var LiveSections = []string{"clients", "trust", "policies", "default_policy", "tsa", "keys"}

// Changes names the top-level sections (by their YAML keys) that differ
// between old and next: live can be applied now, restart needs a restart.
func Changes(old, next *Config) (live, restart []string) {
	ov, nv := reflect.ValueOf(*old), reflect.ValueOf(*next)
	t := ov.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			name = strings.ToLower(t.Field(i).Name)
		}
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		if slices.Contains(LiveSections, name) {
			live = append(live, name)
		} else {
			restart = append(restart, name)
		}
	}
	return live, restart
}
