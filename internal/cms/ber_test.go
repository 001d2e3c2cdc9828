package cms

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

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
			in := testtool.Unhex(t, tc.in)
			got, err := NormaliseBER(in, 32)
			if err != nil {
				t.Fatal(err)
			}
			if want := testtool.Unhex(t, tc.want); !bytes.Equal(got, want) {
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
		{"indefinite primitive", "04 80 41 00 00", ErrMalformedBER},
		{"missing end-of-contents", "30 80 02 01 01", ErrMalformedBER},
		{"length beyond input", "30 84 7f ff ff ff 00 00 00 00", ErrMalformedBER},
		{"five length octets", "30 85 00 00 00 00 01 00", ErrMalformedBER},
		{"truncated length", "30 82 01", ErrMalformedBER},
		{"trailing data", "30 00 00", ErrMalformedBER},
		{"stray end-of-contents", "30 02 00 00", ErrMalformedBER},
		{"high tag number", "1f 81 00 00", ErrMalformedBER},
		{"constructed string with a non-string chunk", "24 80 02 01 01 00 00", ErrMalformedBER},
		{"too deep", strings.Repeat("30 80 ", 40) + strings.Repeat("00 00 ", 40), ErrBERTooLarge},
		{"too deep in a string", "24 80 " + strings.Repeat("24 80 ", 40) + strings.Repeat("00 00 ", 41), ErrBERTooLarge},
		{"empty", "", ErrMalformedBER},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NormaliseBER(testtool.Unhex(t, tc.in), 32)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
