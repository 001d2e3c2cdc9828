package ers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/tsa"
)

func (f *fixture) stamper() Stamper {
	return func(root []byte, h crypto.Hash) ([]byte, error) {
		f.stamp++
		tok, _, err := f.a.Token(context.Background(), root, h)
		return tok, err
	}
}

// judge wraps the policy judge of the fixture: it records the time each
// token is judged at, and caches verdicts of identical tokens at identical
// times (the 10,000 records of one batch share their tokens).
type judge struct {
	mu    sync.Mutex
	inner TokenJudge
	calls []time.Time
	seen  map[string]*tsa.TSTInfo
}

func (f *fixture) judge(t testing.TB) *judge {
	v := f.verifier(t)
	return &judge{inner: func(tok []byte, at time.Time) (*tsa.TSTInfo, error) { return v(tok) }, seen: map[string]*tsa.TSTInfo{}}
}

func (j *judge) judge(tok []byte, at time.Time) (*tsa.TSTInfo, error) {
	j.mu.Lock()
	j.calls = append(j.calls, at)
	key := fmt.Sprintf("%x@%d", sha256.Sum256(tok), at.UnixNano())
	info, ok := j.seen[key]
	j.mu.Unlock()
	if ok {
		return info, nil
	}
	info, err := j.inner(tok, at)
	if err == nil {
		j.mu.Lock()
		j.seen[key] = info
		j.mu.Unlock()
	}
	return info, err
}

// docs are the hashes of n documents under each algorithm.
func docs(n int) map[crypto.Hash][][]byte {
	return map[crypto.Hash][][]byte{
		crypto.SHA256: docHashesWith(crypto.SHA256, n),
		crypto.SHA384: docHashesWith(crypto.SHA384, n),
		crypto.SHA512: docHashesWith(crypto.SHA512, n),
	}
}

func docOf(d map[crypto.Hash][][]byte, i int) map[crypto.Hash][]byte {
	out := map[crypto.Hash][]byte{}
	for h, hs := range d {
		out[h] = hs[i]
	}
	return out
}

// TestRenew seals a batch, renews its time-stamps twice and its hash tree
// twice (SHA-256, then SHA-512, then SHA-384, with a time-stamp renewal
// after each), each renewal one time-stamp for the batch; every record
// verifies after each step with the first genTime as its existence time,
// each token judged at the genTime of the next and the last at the
// validation time.
func TestRenew(t *testing.T) {
	f := newFixture(t)
	const n = 13
	d := docs(n)
	recs, err := Seal(d[crypto.SHA256], crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	first, err := Verify(recs[0], d[crypto.SHA256][0], f.verifier(t))
	if err != nil {
		t.Fatal(err)
	}
	type op struct {
		name string
		h    crypto.Hash // 0: time-stamp renewal
	}
	steps := []op{{"timestamp", 0}, {"timestamp", 0}, {"hashtree", crypto.SHA512}, {"timestamp", 0}, {"hashtree", crypto.SHA384}, {"timestamp", 0}}
	wantStamps, wantChains := 1, 1
	validation := time.Now().Add(time.Hour)
	for si, o := range steps {
		time.Sleep(1100 * time.Millisecond) // genTimes a second apart
		f.stamp = 0
		if o.h == 0 {
			recs, err = RenewTimeStamps(recs, f.stamper())
		} else {
			recs, err = RenewHashTree(recs, d[o.h], o.h, f.stamper())
			wantChains++
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", si, o.name, err)
		}
		wantStamps++
		if f.stamp != 1 {
			t.Fatalf("step %d %s: %d time-stamps for the batch, want 1", si, o.name, f.stamp)
		}
		for i, rec := range recs {
			j := f.judge(t)
			res, err := VerifyRecord(rec, docOf(d, i), j.judge, validation)
			if err != nil {
				t.Fatalf("step %d %s: record %d: %v", si, o.name, i, err)
			}
			r, _ := Parse(rec)
			if len(r.Chains) != wantChains || len(res.Stamps) != wantStamps || !res.Existed.Equal(first) {
				t.Fatalf("step %d: %d chains, %d stamps, existed %v; want %d, %d, %v", si, len(r.Chains), len(res.Stamps), res.Existed, wantChains, wantStamps, first)
			}
			for k, at := range j.calls {
				want := validation
				if k+1 < len(res.Stamps) {
					want = res.Stamps[k+1]
				}
				if !at.Equal(want) {
					t.Fatalf("step %d: token %d judged at %v, want %v", si, k, at, want)
				}
				if k > 0 && !res.Stamps[k].After(res.Stamps[k-1]) {
					t.Fatalf("step %d: genTimes %v", si, res.Stamps)
				}
			}
			// Another document, or this one one bit off under any of the
			// algorithms, is not covered.
			other := docOf(d, (i+5)%n)
			if _, err := VerifyRecord(rec, other, j.judge, validation); !errors.Is(err, ErrNotCovered) {
				t.Fatalf("step %d: record %d verified for document %d: %v", si, i, (i+5)%n, err)
			}
			for _, h := range res.Hashes {
				bad := docOf(d, i)
				bad[h] = append([]byte(nil), bad[h]...)
				bad[h][3] ^= 0x10
				if _, err := VerifyRecord(rec, bad, j.judge, validation); !errors.Is(err, ErrNotCovered) {
					t.Fatalf("step %d: record %d verified with its %v hash modified: %v", si, i, h, err)
				}
			}
			// A missing algorithm is named.
			if len(res.Hashes) > 1 {
				if _, err := VerifyRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: d[crypto.SHA256][i]}, j.judge, validation); !errors.Is(err, ErrHash) {
					t.Fatalf("step %d: record %d without its later hashes: %v", si, i, err)
				}
			}
		}
	}
	t.Run("tampered", func(t *testing.T) { tamperEveryByte(t, f, recs[6], docOf(d, 6)) })
}

// tamperEveryByte flips each byte of a renewed record outside its tokens
// (and every 61st inside them): verification fails with one of ers's
// sentinels, never panics; flips inside tokens that tsa.Verify tolerates
// (the SignedData version, which no signature covers) are logged.
func tamperEveryByte(t *testing.T, f *fixture, rec []byte, doc map[crypto.Hash][]byte) {
	r, err := Parse(rec)
	if err != nil {
		t.Fatal(err)
	}
	inToken := make([]bool, len(rec))
	off := 0
	for _, c := range r.Chains {
		for _, ats := range c {
			at := off + indexOf(rec[off:], ats.Raw)
			tokAt := at + len(ats.Raw) - len(ats.TimeStamp)
			for k := tokAt; k < at+len(ats.Raw); k++ {
				inToken[k] = true
			}
			off = at + len(ats.Raw)
		}
	}
	sentinels := []error{ErrMalformed, ErrTooLarge, ErrHash, ErrUnsupported, ErrNotCovered, ErrRootMismatch, ErrRenewal, ErrToken}
	j := f.judge(t)
	tolerated, tried := 0, 0
	for k := range rec {
		if inToken[k] && k%61 != 0 {
			continue
		}
		tried++
		b := append([]byte(nil), rec...)
		b[k] ^= 0x01
		_, err := VerifyRecord(b, doc, j.judge, time.Time{})
		switch {
		case err == nil && !inToken[k]:
			t.Fatalf("verified with byte %d flipped", k)
		case err == nil:
			tolerated++
			if os.Getenv("ERS_DEBUG") != "" {
				t.Logf("accepted flip at %d of %d", k, len(rec))
			}
		default:
			if !matchesAny(err, sentinels) {
				t.Fatalf("byte %d: %v has no ers sentinel", k, err)
			}
		}
	}
	t.Logf("%d flips tried, %d inside tokens accepted by tsa.Verify", tried, tolerated)
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

func matchesAny(err error, targets []error) bool {
	for _, e := range targets {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// TestRenewTenThousand: 10,000 documents sealed with one time-stamp,
// renewed with one more; every record verifies.
func TestRenewTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 records")
	}
	f := newFixture(t)
	const n = 10000
	hs := docHashes(n)
	recs, err := Seal(hs, crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	if recs, err = RenewTimeStamps(recs, f.stamper()); err != nil {
		t.Fatal(err)
	}
	if f.stamp != 2 {
		t.Fatalf("%d time-stamps for sealing and renewing, want 2", f.stamp)
	}
	j := f.judge(t)
	for i, rec := range recs {
		if _, err := VerifyRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: hs[i]}, j.judge, time.Time{}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}

// TestRenewRefusals: what Renew cannot renew as one batch, and records
// whose renewals go back in time or change algorithm inside a chain.
func TestRenewRefusals(t *testing.T) {
	f := newFixture(t)
	d := docs(4)
	r256, err := Seal(d[crypto.SHA256], crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	r512, err := Seal(d[crypto.SHA512], crypto.SHA512, f.stampFunc(crypto.SHA512))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RenewTimeStamps([][]byte{r256[0], r512[1]}, f.stamper()); !errors.Is(err, ErrRenewal) {
		t.Fatalf("mixed algorithms renewed: %v", err)
	}
	if _, err := RenewHashTree(r256, d[crypto.SHA512][:3], crypto.SHA512, f.stamper()); !errors.Is(err, ErrHash) {
		t.Fatalf("3 hashes for 4 records: %v", err)
	}
	if _, err := RenewHashTree(r256, d[crypto.SHA256], crypto.MD5, f.stamper()); !errors.Is(err, ErrHash) {
		t.Fatalf("MD5: %v", err)
	}
	if _, err := RenewTimeStamps(nil, f.stamper()); !errors.Is(err, ErrNoDocuments) {
		t.Fatalf("no records: %v", err)
	}
	if _, err := RenewTimeStamps([][]byte{{0x30, 0}}, f.stamper()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}

	// A renewal by a TSA whose clock is an hour behind: the renewal's
	// genTime is older than what it renews.
	slow, err := tsa.New(tsa.Config{Key: tsa.StaticKey(f.key, []*x509.Certificate{f.cert, f.ca.Cert}), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1},
		Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	back, err := RenewTimeStamps(r256, func(root []byte, h crypto.Hash) ([]byte, error) {
		tok, _, err := slow.Token(context.Background(), root, h)
		return tok, err
	})
	if err != nil {
		t.Fatal(err)
	}
	j := f.judge(t)
	if _, err := VerifyRecord(back[0], docOf(d, 0), j.judge, time.Time{}); !errors.Is(err, ErrRenewal) {
		t.Fatalf("renewal dated before what it renews: %v", err)
	}

	// A time-stamp of another algorithm appended to a chain.
	mixed, err := Parse(r256[0])
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Parse(r512[0])
	mixed.Chains[0] = append(mixed.Chains[0], other.Chains[0][0])
	mixed.DigestAlgorithms = append(mixed.DigestAlgorithms, crypto.SHA512)
	b, err := mixed.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyRecord(b, docOf(d, 0), j.judge, time.Time{}); !errors.Is(err, ErrRenewal) {
		t.Fatalf("SHA-512 time-stamp in a SHA-256 chain: %v", err)
	}
}

// TestJudgedAtNextTime: a TSA whose certificate the judge holds invalid
// from some time on: a record renewed before that time verifies long
// after it, a record renewed only after it does not.
func TestJudgedAtNextTime(t *testing.T) {
	f := newFixture(t)
	d := docs(3)
	recs, err := Seal(d[crypto.SHA256], crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := Parse(recs[0])
	sealTok := r.Chains[0][0].TimeStamp
	info, _ := tsa.ParseToken(sealTok)
	time.Sleep(1100 * time.Millisecond)
	renewed, err := RenewTimeStamps(recs, f.stamper())
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(t)
	for _, tc := range []struct {
		name    string
		expires time.Time // the seal token's TSA is good until then
		want    error
	}{
		{"renewed in time", info.GenTime.Add(time.Second / 2 * 3), nil},
		{"renewed too late", info.GenTime.Add(time.Second / 2), ErrToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			judge := func(tok []byte, at time.Time) (*tsa.TSTInfo, error) {
				if string(tok) == string(sealTok) && (at.IsZero() || at.After(tc.expires)) {
					return nil, fmt.Errorf("%w: TSA certificate expired at %v", ErrToken, tc.expires)
				}
				return v(tok)
			}
			_, err := VerifyRecord(renewed[1], docOf(d, 1), judge, time.Now().Add(24*time.Hour))
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The record before renewal is judged at the validation time.
			if _, err := VerifyRecord(recs[1], docOf(d, 1), judge, time.Now().Add(24*time.Hour)); !errors.Is(err, ErrToken) {
				t.Fatalf("unrenewed record: %v", err)
			}
		})
	}
}

// TestRenewInParts renews as the Renew RPC does: the leaves
// (TimeStampLeaf, HashTreeLeaf) are computed apart from the records, one
// tree over the distinct ones and one time-stamp, and each record gets its
// ArchiveTimeStamp with AppendRenewal; the records of two batches renewed
// together verify, and a renewal added to a record of the other batch does
// not.
func TestRenewInParts(t *testing.T) {
	f := newFixture(t)
	d := docs(9)
	a, err := Seal(d[crypto.SHA256][:6], crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Seal(d[crypto.SHA256][6:], crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	recs := append(a, b...)
	for step, hashTree := range []bool{false, true, false} {
		time.Sleep(1100 * time.Millisecond)
		leaves := make([][]byte, len(recs))
		h := crypto.SHA512
		for i, rec := range recs {
			if hashTree {
				leaves[i], err = HashTreeLeaf(rec, d[h][i], h)
			} else {
				leaves[i], h, err = TimeStampLeaf(rec)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		uniq, index := UniqueLeaves(leaves)
		// Two tokens at first (two batches), then one (renewed together).
		if want := map[int]int{0: 2, 1: len(recs), 2: 1}[step]; len(uniq) != want {
			t.Fatalf("step %d: %d distinct leaves, want %d", step, len(uniq), want)
		}
		tr, err := NewTree(uniq, h)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := f.stamper()(tr.Root(), h)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			ats, err := tr.StampDER(index[i], tok)
			if err != nil {
				t.Fatal(err)
			}
			if i == 7 {
				// The renewal of record 7 (batch b) added to record 0 (batch a).
				wrong, err := AppendRenewal(recs[0], ats, hashTree)
				if err != nil {
					t.Fatal(err)
				}
				want := ErrRenewal
				if hashTree {
					want = ErrNotCovered
				}
				if _, err := VerifyRecord(wrong, docOf(d, 0), f.judge(t).judge, time.Time{}); !errors.Is(err, want) {
					t.Fatalf("hashTree %v: another batch's renewal: %v, want %v", hashTree, err, want)
				}
			}
			if recs[i], err = AppendRenewal(recs[i], ats, hashTree); err != nil {
				t.Fatal(err)
			}
		}
		for i, rec := range recs {
			if _, err := VerifyRecord(rec, docOf(d, i), f.judge(t).judge, time.Time{}); err != nil {
				t.Fatalf("hashTree %v: record %d: %v", hashTree, i, err)
			}
		}
	}
	if _, err := AppendRenewal(recs[0], []byte{0x30, 0x00}, false); !errors.Is(err, ErrMalformed) {
		t.Fatalf("an empty ArchiveTimeStamp: %v", err)
	}
}

// TestTreeRecordIsMarshal: the records Tree.Record writes in one pass are
// the bytes EvidenceRecord.Marshal writes, for trees of every shape and
// each hash.
func TestTreeRecordIsMarshal(t *testing.T) {
	f := newFixture(t)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, n := range []int{1, 2, 3, 5, 8, 13, 100} {
			tr, err := NewTree(docHashesWith(h, n), h)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := f.stamper()(tr.Root(), h)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				got, err := tr.Record(i, tok)
				if err != nil {
					t.Fatal(err)
				}
				r := &EvidenceRecord{Version: 1, DigestAlgorithms: []crypto.Hash{h}, Chains: [][]ArchiveTimeStamp{{tr.Stamp(i, tok)}}}
				want, err := r.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%v, %d documents, record %d:\n got %x\nwant %x", h, n, i, got, want)
				}
			}
		}
	}
}

// TestRenewBy: a record's next renewal is due when the TSA certificate of
// its last token expires; after a renewal by another TSA, that one's. A
// token without its certificate gives no date.
func TestRenewBy(t *testing.T) {
	f := newFixture(t)
	key2, cert2, err := f.ca.IssueKey("second TSA", devca.TSA, time.Now().AddDate(-1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	second, err := tsa.New(tsa.Config{Key: tsa.StaticKey(key2, []*x509.Certificate{cert2, f.ca.Cert}), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Seal(docHashes(2), crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := RenewTimeStamps(recs, func(root []byte, h crypto.Hash) ([]byte, error) {
		tok, _, err := second.Token(context.Background(), root, h)
		return tok, err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A token whose certificates were left out (as an RFC 3161 answer to
	// a request without certReq).
	bare, err := Seal(docHashes(1), crypto.SHA256, func(root []byte) ([]byte, error) {
		q := &tsa.Request{Hash: crypto.SHA256, HashOID: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, Digest: root}
		_, res := f.a.Stamp(context.Background(), q)
		return res.Token, res.Cause
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rec  []byte
		want *x509.Certificate
	}{
		{"sealed", recs[1], f.cert},
		{"renewed by another TSA", renewed[1], cert2},
		{"no certificate in the token", bare[0], nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			by, c, ok := r.RenewBy()
			if ok != (tc.want != nil) || (ok && (!by.Equal(tc.want.NotAfter) || !c.Equal(tc.want))) {
				t.Fatalf("RenewBy: %v %v %v", by, c, ok)
			}
		})
	}
}
