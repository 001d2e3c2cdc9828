package signer

import (
	"crypto"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// opensslCorpus is the OpenSSL project's fuzzing corpus for its CMS parser:
// 1,389 real and mutated CMS messages, kept in the shared vectors.
func opensslCorpus(t testing.TB) string {
	t.Helper()
	return testtool.Vectors(t, "openssl-fuzz", "cms")
}

func corpusFiles(t testing.TB) [][]byte {
	t.Helper()
	dir := opensslCorpus(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// seeds are signatures of our own, OpenSSL's golden files and the corpus, so the
// fuzzer starts from inputs that get deep into Verify.
func seeds(f *testing.F) [][]byte {
	fx := newSigner(f, p256)
	var out [][]byte
	for _, m := range []mode{detached, attached, digest} {
		out = append(out, signIn(f, m, []byte("content"), fx, crypto.SHA256, time.Time{}))
	}
	// Smart-card padding (TestTrailingZeroPadding).
	out = append(out, append(signIn(f, detached, []byte("content"), fx, crypto.SHA256, time.Time{}), make([]byte, 64)...))
	for _, name := range goldenSignatures() {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out, corpusFiles(f)...)
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := Parse(data)
		testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge)
		if err == nil && len(sd.SignerInfos) > DefaultLimits().MaxSigners {
			t.Fatalf("%d signer infos", len(sd.SignerInfos))
		}
		if err == nil && (sd.TrailingZeros > DefaultLimits().MaxTrailingZeros || sd.TrailingZeros > len(data)) {
			t.Fatalf("%d zero bytes of padding accepted", sd.TrailingZeros)
		}
	})
}

func FuzzVerify(f *testing.F) {
	ca := goldenCA(f)
	for _, s := range seeds(f) {
		f.Add(s)
	}
	content := goldenContent(f)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Verify(data, VerifyOptions{Content: content, Validator: ca, Now: func() time.Time { return at }})
		testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge)
		if err == nil {
			checkVerdict(t, v)
		}
	})
}

func checkVerdict(t *testing.T, v policy.Verdict) {
	switch v.Status {
	case policy.Valid:
		if len(v.Reasons) != 0 {
			t.Fatalf("VALID with reasons %v", v.Reasons)
		}
	case policy.Invalid, policy.Indeterminate:
		if len(v.Reasons) == 0 {
			t.Fatalf("%s without a reason", v.Status)
		}
	default:
		t.Fatalf("status %q", v.Status)
	}
}

// TestOpenSSLFuzzCorpus feeds every input of the OpenSSL CMS fuzzing
// corpus to Parse and Verify: no panic, each quickly and within a memory
// bound.
func TestOpenSSLFuzzCorpus(t *testing.T) {
	dir := opensslCorpus(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	const (
		maxTime  = time.Second
		maxAlloc = 64 << 20
	)
	ca := goldenCA(t)
	content := goldenContent(t)
	stats := map[string]int{}
	var worstAlloc uint64
	var worstTime time.Duration
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var perr, verr error
		var v policy.Verdict
		start := time.Now()
		alloc := allocated(func() {
			_, perr = Parse(data)
			v, verr = Verify(data, VerifyOptions{Content: content, Validator: ca})
		})
		took := time.Since(start)
		worstAlloc, worstTime = max(worstAlloc, alloc), max(worstTime, took)
		if took > maxTime {
			t.Errorf("%s: %v", e.Name(), took)
		}
		if alloc > maxAlloc {
			t.Errorf("%s: %d bytes allocated for %d input bytes", e.Name(), alloc, len(data))
		}
		testtool.CheckErr(t, perr, ErrMalformed, ErrTooLarge)
		testtool.CheckErr(t, verr, ErrMalformed, ErrTooLarge)
		switch {
		case perr != nil:
			stats["parse error"]++
		case verr != nil:
			stats["verify error"]++
		default:
			checkVerdict(t, v)
			stats[string(v.Status)]++
		}
	}
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-14s %d", k, stats[k])
	}
	t.Logf("%d inputs; worst %v, %d bytes allocated", len(entries), worstTime, worstAlloc)
}
