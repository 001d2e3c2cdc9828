package main

import "testing"

// TestItemParallelism: the raw baseline of a batch op runs at the
// parallelism its items have in pecetd (docs/performance.md "Batch calls").
func TestItemParallelism(t *testing.T) {
	for _, tc := range []struct {
		name                         string
		conc, batch, sessions, wantN int
	}{
		{"4 calls of 64 fill 16 sessions", 4, 64, 16, 16},
		{"2 calls of 64 fill 16 sessions", 2, 64, 16, 16},
		{"one call of 64 fills 16 sessions", 1, 64, 16, 16},
		{"small batches", 2, 4, 16, 8},
		{"one item a call is a single call", 8, 1, 16, 8},
		{"a larger pool", 4, 64, 32, 32},
		{"pool not set: the default", 4, 64, 0, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := itemParallelism(tc.conc, tc.batch, tc.sessions); got != tc.wantN {
				t.Errorf("itemParallelism(%d, %d, %d) = %d, want %d", tc.conc, tc.batch, tc.sessions, got, tc.wantN)
			}
		})
	}
}
