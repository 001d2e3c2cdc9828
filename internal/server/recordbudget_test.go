package server

import (
	"crypto"
	"crypto/sha256"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/policy"
)

// countingValidator counts the chains judged: the path validations a call
// pays for.
type countingValidator struct {
	inner policy.Validator
	n     *atomic.Int64
}

func (c countingValidator) Validate(r policy.Request) policy.Verdict {
	c.n.Add(1)
	return c.inner.Validate(r)
}

// TestVerifyRecordStopsAtBudget: an evidence record whose renewals need
// more work than a call's budget (160 time-stamps, each one path of its
// TSA's chain, over the 128 paths of policy.DefaultLimits) is refused with
// ResourceExhausted once the budget is spent: the tokens after that are not
// judged (docs/security.md "Work budget per verification"). The same
// record with fewer renewals is VALID.
func TestVerifyRecordStopsAtBudget(t *testing.T) {
	var judged atomic.Int64
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		d.Validator = countingValidator{inner: d.Validator, n: &judged}
	}})
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	ts := pecetv1.NewTimestampServiceClient(cc)
	stamp := func(digest []byte, h crypto.Hash) ([]byte, error) {
		r, err := ts.Timestamp(ctx, &pecetv1.TimestampRequest{Digest: digest, Hash: hashProto[h]})
		return r.GetToken(), err
	}
	doc := sha256.Sum256([]byte("<PRIHL/>"))
	tree, err := ers.NewTree([][]byte{doc[:]}, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := stamp(tree.Root(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := tree.Record(0, tok)
	if err != nil {
		t.Fatal(err)
	}
	records := map[int][]byte{}
	for n := 1; n < 160; n++ {
		var out [][]byte
		if n%ers.MaxStamps == 0 {
			out, err = ers.RenewHashTree([][]byte{rec}, [][]byte{doc[:]}, crypto.SHA256, stamp)
		} else {
			out, err = ers.RenewTimeStamps([][]byte{rec}, stamp)
		}
		if err != nil {
			t.Fatalf("renewal %d: %v", n, err)
		}
		rec = out[0]
		records[n+1] = rec
	}
	ac := pecetv1.NewArchiveServiceClient(cc)
	for _, tc := range []struct {
		stamps int
		code   codes.Code
		// most chains judged: every token's, or up to the budget
		most int64
	}{
		{100, codes.OK, 100},
		{160, codes.ResourceExhausted, int64(policy.DefaultLimits.Paths) + 1},
	} {
		judged.Store(0)
		resp, err := ac.VerifyRecord(ctx, &pecetv1.VerifyRecordRequest{Record: records[tc.stamps],
			Digests: []*pecetv1.DocumentDigest{{Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256, Digest: doc[:]}}, Policy: "test"})
		n := judged.Load()
		t.Logf("%d time-stamps (%d bytes): %d chains judged, %v", tc.stamps, len(records[tc.stamps]), n, err)
		if status.Code(err) != tc.code || n > tc.most {
			t.Fatalf("%d time-stamps: %v, %d chains judged (at most %d)", tc.stamps, err, n, tc.most)
		}
		if tc.code == codes.OK && resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
			t.Fatalf("%d time-stamps: %v", tc.stamps, resp.GetVerdict())
		}
	}
}
