package ers

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	_ "crypto/sha512" // registers SHA-384 and SHA-512 for crypto.Hash.New
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/tsa"
)

// fixture is a dev CA and a pecet TSA (tsa.Authority) certified by it, as
// the tsa package's own tests make them.
type fixture struct {
	ca    *devca.CA
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	a     *tsa.Authority
	stamp int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	now := time.Now()
	ca, err := devca.NewCA("ers test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.IssueKey("ers test TSA", devca.TSA, now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tsa.New(tsa.Config{Key: tsa.StaticKey(key, []*x509.Certificate{cert, ca.Cert}), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ca: ca, cert: cert, key: key, a: a}
}

func (f *fixture) stampFunc(h crypto.Hash) func([]byte) ([]byte, error) {
	return func(root []byte) ([]byte, error) {
		f.stamp++
		tok, _, err := f.a.Token(context.Background(), root, h)
		return tok, err
	}
}

func (f *fixture) verifier(t testing.TB) TokenVerifier {
	e, err := policy.NewEngine("test", &policy.Policy{Name: "test", Anchors: []*x509.Certificate{f.ca.Cert}, Revocation: policy.RevocationOff})
	if err != nil {
		t.Fatal(err)
	}
	return TSAVerifier(tsa.VerifyOptions{Validator: e})
}

func docHashes(n int) [][]byte { return docHashesWith(crypto.SHA256, n) }

func docHashesWith(h crypto.Hash, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		d := h.New()
		d.Write(fmt.Appendf(nil, "document %d", i))
		out[i] = d.Sum(nil)
	}
	return out
}

// TestSealVerify seals 1,000 documents with one time-stamp and verifies
// every record for its document and none for another.
func TestSealVerify(t *testing.T) {
	f := newFixture(t)
	verify := f.verifier(t)
	for _, tc := range []struct {
		n int
		h crypto.Hash
	}{{1, crypto.SHA256}, {2, crypto.SHA256}, {3, crypto.SHA256}, {7, crypto.SHA256}, {5, crypto.SHA384}, {9, crypto.SHA512}, {1000, crypto.SHA256}} {
		n := tc.n
		t.Run(fmt.Sprint(n, tc.h), func(t *testing.T) {
			f.stamp = 0
			hashes := docHashesWith(tc.h, n)
			before := time.Now().Add(-2 * time.Second)
			recs, err := Seal(hashes, tc.h, f.stampFunc(tc.h))
			if err != nil {
				t.Fatal(err)
			}
			if f.stamp != 1 || len(recs) != n {
				t.Fatalf("%d stamps and %d records for %d documents, want 1 and %d", f.stamp, len(recs), n, n)
			}
			for i, rec := range recs {
				at, err := Verify(rec, hashes[i], verify)
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if at.Before(before) || at.After(time.Now().Add(2*time.Second)) {
					t.Fatalf("record %d: genTime %v", i, at)
				}
				// A modified document: another document's hash, and one bit off.
				// A record also proves its sibling, the other hash of its
				// first PartialHashtree (RFC 4998 section 5.3), so the other
				// document is one from outside the first list.
				other := docHashesWith(tc.h, n+1)[n]
				if n > 2 {
					// The first document of the next pair, never i's pair.
					other = hashes[(i/2*2+2)%n]
				}
				bad := append([]byte(nil), hashes[i]...)
				bad[i%len(bad)] ^= 1
				for _, d := range [][]byte{other, bad} {
					if _, err := Verify(rec, d, verify); !errors.Is(err, ErrNotCovered) {
						t.Fatalf("record %d verified a modified document: %v", i, err)
					}
				}
			}
		})
	}
}

// treeSpan returns the offsets of the reducedHashtree [2] element inside
// a record Seal made.
func treeSpan(t *testing.T, rec []byte) (int, int) {
	t.Helper()
	r, err := Parse(rec)
	if err != nil {
		t.Fatal(err)
	}
	ats := r.Chains[0][0]
	tree := len(rec) - len(ats.TimeStamp)
	for i := tree - 1; i >= 0; i-- {
		if rec[i] == 0xa2 {
			return i, tree
		}
	}
	t.Fatal("no reducedHashtree")
	return 0, 0
}

// TestTamperedRecord flips every byte of the hash tree part of records,
// and every byte of one whole record: verification fails, never panics.
func TestTamperedRecord(t *testing.T) {
	f := newFixture(t)
	verify := f.verifier(t)
	hashes := docHashes(37)
	recs, err := Seal(hashes, crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 17, 36} {
		from, to := treeSpan(t, recs[i])
		for off := from; off < to; off++ {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				b := append([]byte(nil), recs[i]...)
				b[off] ^= mask
				if _, err := Verify(b, hashes[i], verify); err == nil {
					t.Fatalf("record %d verified with byte %d ^ %#x", i, off, mask)
				}
			}
		}
	}
	// Every byte of the record's own structure before the token (version,
	// digestAlgorithms, the archive time-stamp's header and algorithm)
	// is checked too. Inside the token, the token's verifier decides: a
	// flip must not panic, and the few tsa.Verify tolerates (the
	// SignedData version, which no signature covers) are logged.
	_, tokenAt := treeSpan(t, recs[5])
	tolerated := 0
	for off := range recs[5] {
		b := append([]byte(nil), recs[5]...)
		b[off] ^= 0x01
		_, err := Verify(b, hashes[5], verify)
		switch {
		case err == nil && off < tokenAt:
			t.Fatalf("record 5 verified with byte %d flipped", off)
		case err == nil:
			tolerated++
			if os.Getenv("ERS_DEBUG") != "" {
				t.Logf("accepted %d", off)
			}
		}
	}
	t.Logf("%d of %d one-bit flips inside the token were accepted by tsa.Verify", tolerated, len(recs[5])-tokenAt)
}

// TestSealRefusals: bad input to Seal is an error, not a record.
func TestSealRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		hashes [][]byte
		h      crypto.Hash
		want   error
	}{
		{"none", nil, crypto.SHA256, ErrNoDocuments},
		{"short hash", [][]byte{make([]byte, 31)}, crypto.SHA256, ErrHash},
		{"md5", [][]byte{make([]byte, 16)}, crypto.MD5, ErrHash},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Seal(tc.hashes, tc.h, f.stampFunc(tc.h)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestOpenSSLVerifiesRoot: openssl ts -verify -digest <root> accepts the
// token inside a record.
func TestOpenSSLVerifiesRoot(t *testing.T) {
	testtool.OpenSSL(t)
	f := newFixture(t)
	var root []byte
	stamp := f.stampFunc(crypto.SHA256)
	recs, err := Seal(docHashes(10), crypto.SHA256, func(d []byte) ([]byte, error) {
		root = d
		return stamp(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(recs[3])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok := write("token.der", r.Chains[0][0].TimeStamp)
	ca := write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Cert.Raw}))
	testtool.RunOpenSSL(t, "ts", "-verify", "-token_in", "-in", tok, "-digest", hex.EncodeToString(root), "-CAfile", ca)
	wrong := append([]byte(nil), root...)
	wrong[0] ^= 1
	if out, err := testtool.TryOpenSSL(t, "ts", "-verify", "-token_in", "-in", tok, "-digest", hex.EncodeToString(wrong), "-CAfile", ca); err == nil {
		t.Fatalf("openssl accepted a wrong root:\n%s", out)
	}
}

// TestParseBounds: records beyond a bound or with what is not done yet
// are refused with the precise sentinel, never parsed into memory.
func TestParseBounds(t *testing.T) {
	f := newFixture(t)
	verify := f.verifier(t)
	hashes := docHashes(4)
	recs, err := Seal(hashes, crypto.SHA256, f.stampFunc(crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	good, err := Parse(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	ats := good.Chains[0][0]
	remarshal := func(mod func(r *EvidenceRecord)) []byte {
		r := &EvidenceRecord{Version: 1, DigestAlgorithms: []crypto.Hash{crypto.SHA256}, Chains: [][]ArchiveTimeStamp{{ats}}}
		r.Chains[0][0].Raw = nil // re-encoded from the fields the case changes
		mod(r)
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	deep := make([][][]byte, MaxLevels+1)
	for i := range deep {
		deep[i] = [][]byte{hashes[1]}
	}
	wide := make([][]byte, MaxHashesPerLevel+1)
	for i := range wide {
		wide[i] = hashes[0]
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want error
	}{
		{"too many bytes", make([]byte, MaxRecordBytes+1), ErrTooLarge},
		{"too many chains", remarshal(func(r *EvidenceRecord) {
			for range MaxChains {
				r.Chains = append(r.Chains, r.Chains[0])
			}
		}), ErrTooLarge},
		{"too many stamps", remarshal(func(r *EvidenceRecord) {
			for range MaxStamps {
				r.Chains[0] = append(r.Chains[0], ats)
			}
		}), ErrTooLarge},
		{"too deep", remarshal(func(r *EvidenceRecord) { r.Chains[0][0].ReducedHashtree = deep }), ErrTooLarge},
		{"too wide", remarshal(func(r *EvidenceRecord) { r.Chains[0][0].ReducedHashtree = [][][]byte{wide} }), ErrTooLarge},
		// A chain copied as if it renewed the tree does not cover the
		// document bound to the chain before it.
		{"copied chain", remarshal(func(r *EvidenceRecord) { r.Chains = append(r.Chains, r.Chains[0]) }), ErrNotCovered},
		// A time-stamp copied as if it renewed the one before.
		{"copied stamp", remarshal(func(r *EvidenceRecord) { r.Chains[0] = append(r.Chains[0], r.Chains[0][0]) }), ErrRenewal},
		{"no chains", remarshal(func(r *EvidenceRecord) { r.Chains = nil }), ErrMalformed},
		{"trailing bytes", append(slices.Clone(recs[0]), 0), ErrMalformed},
		{"empty", nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(tc.der, hashes[0], verify); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
