package ers

import (
	"crypto"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/tsa"
)

// FuzzParse: Parse, Verify and VerifyRecord (renewed records too) never panic on hostile bytes and stay in
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
	// Renewed records: a time-stamp renewal, then a hash-tree renewal.
	renewed, err := RenewTimeStamps(recs[:3], fx.stamper())
	if err != nil {
		f.Fatal(err)
	}
	renewed, err = RenewHashTree(renewed, docHashesWith(crypto.SHA512, 3), crypto.SHA512, fx.stamper())
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range renewed {
		f.Add(r)
	}
	docs512 := docHashesWith(crypto.SHA512, 1)
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	verify := func(tok []byte) (*tsa.TSTInfo, error) { return tsa.ParseToken(tok) }
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseArchiveTimeStamp(b)
		r, err := Parse(b)
		if err != nil {
			return
		}
		if len(r.Chains) > MaxChains {
			t.Fatalf("%d chains", len(r.Chains))
		}
		for _, c := range r.Chains {
			if len(c) > MaxStamps {
				t.Fatalf("%d stamps in a chain", len(c))
			}
		}
		_, _ = Verify(b, hashes[0], verify)
		judge := func(tok []byte, _ time.Time) (*tsa.TSTInfo, error) { return tsa.ParseToken(tok) }
		_, _ = VerifyRecord(b, map[crypto.Hash][]byte{crypto.SHA256: hashes[0], crypto.SHA512: docs512[0]}, judge, time.Time{})
	})
}
