package signer

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// allocated returns the bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostileBERMemory shows that what Parse allocates is bounded by a
// small multiple of its input, whatever the input claims.
func TestHostileBERMemory(t *testing.T) {
	repeat := func(s string, n int) []byte { return bytes.Repeat(testtool.Unhex(t, s), n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	const n = 1 << 18
	tests := []struct {
		name string
		in   []byte
	}{
		{"claims 2 GiB in 10 bytes", testtool.Unhex(t, "30 84 7f ff ff ff 30 80 00 00")},
		{"claims 2 GiB in eContent", testtool.Unhex(t, "30 80 06 09 2a 86 48 86 f7 0d 01 07 02 a0 84 7f ff ff ff 00 00")},
		{"deep nesting", repeat("30 80", n)},
		{"deep nesting, closed", cat(repeat("30 80", n), repeat("00 00", n))},
		{"many empty indefinite elements", cat(testtool.Unhex(t, "30 80"), repeat("30 80 00 00", n), testtool.Unhex(t, "00 00"))},
		{"many one-byte chunks", cat(testtool.Unhex(t, "30 80 24 80"), repeat("04 01 41", n), testtool.Unhex(t, "00 00 00 00"))},
		{"many nested SETs near the depth limit", cat(repeat("31 80", 30), repeat("30 00", n), repeat("00 00", 30))},
		{"signed-data with many indefinite certificates", cat(
			testtool.Unhex(t, "30 80 06 09 2a 86 48 86 f7 0d 01 07 02 a0 80 30 80 02 01 01 31 00 30 0b 06 09 2a 86 48 86 f7 0d 01 07 01 a0 80"),
			repeat("30 80 00 00", n), testtool.Unhex(t, "00 00 31 00 00 00 00 00 00 00"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			got := allocated(func() { _, err = Parse(tc.in) })
			if err == nil {
				t.Fatal("hostile input parsed")
			}
			limit := uint64(3*len(tc.in) + 64<<10)
			t.Logf("%d input bytes, %d allocated: %v", len(tc.in), got, err)
			if got > limit {
				t.Fatalf("allocated %d bytes for %d input bytes (limit %d)", got, len(tc.in), limit)
			}
		})
	}
}
