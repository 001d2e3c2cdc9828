package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/tsa"
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
// more work than a call's budget is refused with ResourceExhausted once the
// budget is spent, and the tokens after that are not judged
// (docs/security.md "Work budget per verification"): 160 time-stamps, each
// one path of its TSA's chain, over the 128 paths of policy.DefaultLimits;
// 100 time-stamps of a P-521 TSA, whose token signatures were not charged
// at all and so were all checked, and the record VALID, after 2.7 times
// the budget's work. The same records with fewer renewals are VALID.
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
	// An outside TSA with a P-521 key, certified by the fixture's CA: each
	// of its tokens costs 110 RSA-2048 checks (policy.Budget).
	k521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c521, err := f.ca.Issue("P-521 TSA", devca.TSA, k521.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tsa521, err := tsa.New(tsa.Config{Key: tsa.StaticKey(k521, []*x509.Certificate{c521, f.ca.Cert}), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}})
	if err != nil {
		t.Fatal(err)
	}
	p521 := func(digest []byte, h crypto.Hash) ([]byte, error) {
		tok, _, err := tsa521.Token(ctx, digest, h)
		return tok, err
	}
	record := func(n int, stamp ers.Stamper) []byte {
		t.Helper()
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
		for i := 1; i < n; i++ {
			var out [][]byte
			if i%ers.MaxStamps == 0 {
				out, err = ers.RenewHashTree([][]byte{rec}, [][]byte{doc[:]}, crypto.SHA256, stamp)
			} else {
				out, err = ers.RenewTimeStamps([][]byte{rec}, stamp)
			}
			if err != nil {
				t.Fatalf("renewal %d: %v", i, err)
			}
			rec = out[0]
		}
		return rec
	}
	ac := pecetv1.NewArchiveServiceClient(cc)
	for _, tc := range []struct {
		name   string
		record []byte
		code   codes.Code
		// most chains judged: every token's, or up to the budget
		most int64
	}{
		{"100 renewals", record(100, stamp), codes.OK, 100},
		// One path per token: the 129th is refused.
		{"160 renewals", record(160, stamp), codes.ResourceExhausted, int64(policy.DefaultLimits.Paths) + 1},
		// 110 per token's signature: at most 37 fit in the budget's 4,096.
		{"P-521, 10 renewals", record(10, p521), codes.OK, 10},
		{"P-521, 100 renewals", record(100, p521), codes.ResourceExhausted, int64(policy.DefaultLimits.SignatureCost/110) + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			judged.Store(0)
			resp, err := ac.VerifyRecord(ctx, &pecetv1.VerifyRecordRequest{Record: tc.record,
				Digests: []*pecetv1.DocumentDigest{{Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256, Digest: doc[:]}}, Policy: "test"})
			n := judged.Load()
			t.Logf("%d bytes: %d chains judged, %v", len(tc.record), n, err)
			if status.Code(err) != tc.code || n > tc.most {
				t.Fatalf("%v, %d chains judged (at most %d)", err, n, tc.most)
			}
			if tc.code == codes.OK && resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
				t.Fatalf("%v", resp.GetVerdict())
			}
		})
	}
}
