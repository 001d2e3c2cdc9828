package cms

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// FuzzNormaliseBER: the normaliser never panics, fails only with its two
// sentinels, and what it returns is DER-shaped (normalising it again
// changes nothing) and within a small constant of the input's size. signer's
// FuzzParse and envelope's FuzzDecrypt reach it through their parsers with
// OpenSSL's corpus (their testdata/fuzz); this target holds it alone.
func FuzzNormaliseBER(f *testing.F) {
	for _, s := range []string{
		"30 00",
		"30 80 02 01 01 00 00",
		"24 80 04 01 41 24 80 04 01 42 00 00 00 00",
		"30 81 03 02 01 01",
		"30 80 06 09 2a 86 48 86 f7 0d 01 07 02 a0 80 30 80 02 01 01 31 00 00 00 00 00 00 00",
		"04 80 41 00 00",
	} {
		f.Add(testtool.Unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<20 {
			return
		}
		out, err := NormaliseBER(in, 0)
		if err != nil {
			if !errors.Is(err, ErrMalformedBER) && !errors.Is(err, ErrBERTooLarge) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if len(out) > len(in)+len(in)/2+16 {
			t.Fatalf("%d bytes out of %d in", len(out), len(in))
		}
		again, err := NormaliseBER(out, 0)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("output is not DER-shaped: %v", err)
		}
	})
}
