package testtool

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB whose Fatalf only records that it was called.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestCheckErr(t *testing.T) {
	errDoc := errors.New("documented")
	tests := []struct {
		name string
		err  error
		fail bool
	}{
		{"nil", nil, false},
		{"documented, wrapped", fmt.Errorf("parse: %w", errDoc), false},
		{"undocumented", errors.New("other"), true},
		{"documented but echoes the input", fmt.Errorf("%w: %s", errDoc, strings.Repeat("x", 400)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			CheckErr(r, tt.err, errDoc)
			if r.failed != tt.fail {
				t.Fatalf("failed = %v, want %v", r.failed, tt.fail)
			}
		})
	}
}
