package signer

import (
	"bytes"
	"encoding/hex"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNormalise(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"DER unchanged", "30 06 02 01 01 04 01 41", "30 06 02 01 01 04 01 41"},
		{"indefinite", "30 80 02 01 01 00 00", "30 03 02 01 01"},
		{"nested indefinite", "30 80 a0 80 30 80 00 00 00 00 00 00", "30 04 a0 02 30 00"},
		{"constructed OCTET STRING", "24 80 04 02 41 42 04 01 43 00 00", "04 03 41 42 43"},
		{"nested constructed OCTET STRING", "24 0a 24 80 04 01 41 00 00 04 01 42", "04 02 41 42"},
		{"eContent as OpenSSL streams it", "a0 80 24 80 04 01 41 04 00 00 00 00 00", "a0 03 04 01 41"},
		{"non-minimal length", "04 81 02 41 42", "04 02 41 42"},
		{"length with leading zero", "30 82 00 03 02 01 05", "30 03 02 01 05"},
		{"empty indefinite", "30 80 00 00", "30 00"},
		{"constructed UTF8String", "2c 80 04 01 c5 04 01 be 00 00", "0c 02 c5 be"},
		{"long content", "30 80 04 81 80 " + strings.Repeat("00", 128) + " 00 00", "30 81 83 04 81 80 " + strings.Repeat("00", 128)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(t, tc.in)
			got, err := normalise(in, 32)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got % x\nwant % x", got, want)
			}
			if tc.in == tc.want && &got[0] != &in[0] {
				t.Error("DER input was copied")
			}
		})
	}
}

func TestNormaliseRejects(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"indefinite primitive", "04 80 41 00 00", ErrMalformed},
		{"missing end-of-contents", "30 80 02 01 01", ErrMalformed},
		{"length beyond input", "30 84 7f ff ff ff 00 00 00 00", ErrMalformed},
		{"five length octets", "30 85 00 00 00 00 01 00", ErrMalformed},
		{"truncated length", "30 82 01", ErrMalformed},
		{"trailing data", "30 00 00", ErrMalformed},
		{"stray end-of-contents", "30 02 00 00", ErrMalformed},
		{"high tag number", "1f 81 00 00", ErrMalformed},
		{"constructed string with a non-string chunk", "24 80 02 01 01 00 00", ErrMalformed},
		{"too deep", strings.Repeat("30 80 ", 40) + strings.Repeat("00 00 ", 40), ErrTooLarge},
		{"too deep in a string", "24 80 " + strings.Repeat("24 80 ", 40) + strings.Repeat("00 00 ", 41), ErrTooLarge},
		{"empty", "", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := normalise(unhex(t, tc.in), 32)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

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
	repeat := func(s string, n int) []byte { return bytes.Repeat(unhex(t, s), n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	const n = 1 << 18
	tests := []struct {
		name string
		in   []byte
	}{
		{"claims 2 GiB in 10 bytes", unhex(t, "30 84 7f ff ff ff 30 80 00 00")},
		{"claims 2 GiB in eContent", unhex(t, "30 80 06 09 2a 86 48 86 f7 0d 01 07 02 a0 84 7f ff ff ff 00 00")},
		{"deep nesting", repeat("30 80", n)},
		{"deep nesting, closed", cat(repeat("30 80", n), repeat("00 00", n))},
		{"many empty indefinite elements", cat(unhex(t, "30 80"), repeat("30 80 00 00", n), unhex(t, "00 00"))},
		{"many one-byte chunks", cat(unhex(t, "30 80 24 80"), repeat("04 01 41", n), unhex(t, "00 00 00 00"))},
		{"many nested SETs near the depth limit", cat(repeat("31 80", 30), repeat("30 00", n), repeat("00 00", 30))},
		{"signed-data with many indefinite certificates", cat(
			unhex(t, "30 80 06 09 2a 86 48 86 f7 0d 01 07 02 a0 80 30 80 02 01 01 31 00 30 0b 06 09 2a 86 48 86 f7 0d 01 07 01 a0 80"),
			repeat("30 80 00 00", n), unhex(t, "00 00 31 00 00 00 00 00 00 00"))},
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
