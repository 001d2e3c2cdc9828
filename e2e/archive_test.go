package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/tsa"
)

// TestDevArchive: the archive lifecycle of docs/archive.md on `pecetd
// --dev` through the CLI: seal a folder, verify a record (and refuse it for
// another document), renew the time-stamps and then the hash tree, verify
// again with the first time as the proven existence time; every archive
// time-stamp inside is a standard RFC 3161 token that `openssl ts -verify`
// accepts for the root its seal or renewal reported.
func TestDevArchive(t *testing.T) {
	d := startDev(t)
	docs := t.TempDir()
	for i := range 5 {
		write(t, docs, fmt.Sprintf("filing-%d.xml", i), strings.Replace(filing, "Jana", fmt.Sprintf("Jana %d", i), 1))
	}
	ca := filepath.Join(d.dir, "ca.pem")
	tsaPEM := filepath.Join(d.dir, "tsa.pem")
	var roots []string
	batch := func(out string) {
		t.Helper()
		var j struct{ Root string }
		if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.Root) != 64 && len(j.Root) != 128 {
			t.Fatalf("--json output %q: %v", out, err)
		}
		roots = append(roots, j.Root)
	}
	out, _ := d.mustRun(t, 0, "archive", "seal", "--json", docs)
	batch(out)
	rec := filepath.Join(docs, "filing-3.xml.ers")
	doc := filepath.Join(docs, "filing-3.xml")
	verify := func(want int, in string) string {
		t.Helper()
		out, _ := d.mustRun(t, want, "archive", "verify", "--record", rec, "--in", in)
		return out
	}
	if out := verify(0, doc); !strings.Contains(out, "VALID\n") || !strings.Contains(out, "existed") {
		t.Fatalf("verify: %s", out)
	}
	if out := verify(1, filepath.Join(docs, "filing-0.xml")); !strings.Contains(out, "DIGEST_MISMATCH") {
		t.Fatalf("verify another document: %s", out)
	}
	out, _ = d.mustRun(t, 0, "archive", "renew", "--json", "--records", docs)
	batch(out)
	out, _ = d.mustRun(t, 0, "archive", "renew", "--json", "--records", docs, "--hash", "sha512")
	batch(out)
	first := verify(0, doc)
	if !strings.Contains(first, "VALID\n") {
		t.Fatalf("verify after renewals: %s", first)
	}
	// Sealing the folder again would replace the renewed records with
	// later proofs: refused, and the records are untouched; no temporary
	// file of a renewal is left to be sealed as a document.
	renewed, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr := d.mustRun(t, 2, "archive", "seal", docs); !strings.Contains(stderr, "exists") {
		t.Fatalf("reseal: %s", stderr)
	}
	if again, _ := os.ReadFile(rec); !bytes.Equal(again, renewed) {
		t.Fatal("a refused reseal changed a renewed record")
	}
	if ents, _ := os.ReadDir(docs); slices.ContainsFunc(ents, func(e os.DirEntry) bool {
		return strings.HasSuffix(e.Name(), ".part") || strings.HasSuffix(e.Name(), ".tmp")
	}) {
		t.Fatalf("a renewal left a temporary file in %s", docs)
	}
	// pecet bench --op seal: batches of 1,000, items per second.
	out, _ = d.mustRun(t, 0, "bench", "--op", "seal", "--batch", "1000", "--concurrency", "2", "--duration", "2s", "--warmup", "200ms", "--json")
	var bench struct {
		Ops        int     `json:"ops"`
		ItemsPerS  float64 `json:"items_per_s"`
		Batch      int     `json:"batch"`
		WrongCalls int     `json:"wrong"`
	}
	if err := json.Unmarshal([]byte(out), &bench); err != nil || bench.Ops == 0 || bench.Batch != 1000 || bench.ItemsPerS <= 0 || bench.WrongCalls != 0 {
		t.Fatalf("bench --op seal: %v\n%s", err, out)
	}
	t.Logf("pecet bench --op seal --batch 1000: %.0f items/s", bench.ItemsPerS)
	// Usage errors: exit 2.
	d.mustRun(t, 2, "archive", "verify", "--record", rec)
	d.mustRun(t, 2, "archive", "seal", "--hash", "md5", docs)

	// openssl ts -verify accepts each archive time-stamp for its root.
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ers.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var stamps []ers.ArchiveTimeStamp
	for _, c := range r.Chains {
		stamps = append(stamps, c...)
	}
	if len(stamps) != 3 {
		t.Fatalf("%d archive time-stamps after sealing and two renewals", len(stamps))
	}
	for i, ats := range stamps {
		tok := write(t, t.TempDir(), "token.der", string(ats.TimeStamp))
		if out, err := openssl(t, "ts", "-verify", "-token_in", "-in", tok, "-digest", roots[i], "-CAfile", ca, "-untrusted", tsaPEM); err != nil {
			t.Fatalf("openssl ts -verify of archive time-stamp %d: %v\n%s", i, err, out)
		}
		wrong, _ := hex.DecodeString(roots[i])
		wrong[0] ^= 1
		if out, err := openssl(t, "ts", "-verify", "-token_in", "-in", tok, "-digest", hex.EncodeToString(wrong), "-CAfile", ca, "-untrusted", tsaPEM); err == nil {
			t.Fatalf("openssl accepted archive time-stamp %d for a wrong root\n%s", i, out)
		}
	}
}

// TestDevArchiveRenewLate: `pecet archive renew` on `pecetd --dev` renews
// only records whose last time-stamp is still good (docs/archive.md
// "Renew in time"). Of one folder, good.xml.ers is pecetd's, late.xml.ers
// was sealed by a TSA (certified by the dev CA) whose certificate expired
// yesterday, soon.xml.ers by one whose certificate expires in 30 days: the
// late record is named with FailedPrecondition and left as it is, the
// soon one renewed with a warning, the good one renewed; exit 4. Verify
// prints when the next renewal is due.
func TestDevArchiveRenewLate(t *testing.T) {
	d := startDev(t)
	ca, err := devca.LoadOrCreateCA(filepath.Join(d.dir, "ca.pem"), filepath.Join(d.dir, "ca-key.pem"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	docs := t.TempDir()
	for _, n := range []string{"good", "late", "soon"} {
		write(t, docs, n+".xml", strings.Replace(filing, "Jana", "Jana "+n, 1))
	}
	d.mustRun(t, 0, "archive", "seal", docs)
	// reseal replaces name's record by one of a TSA whose certificate
	// (valid two years from issued) made the token at genTime.
	reseal := func(name string, issued, genTime time.Time) *x509.Certificate {
		t.Helper()
		key, cert, err := ca.IssueKey("outside TSA "+name, devca.TSA, issued)
		if err != nil {
			t.Fatal(err)
		}
		authority, err := tsa.New(tsa.Config{Key: tsa.StaticKey(key, []*x509.Certificate{cert, ca.Cert}), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1},
			Now: func() time.Time { return genTime }})
		if err != nil {
			t.Fatal(err)
		}
		content, err := os.ReadFile(filepath.Join(docs, name+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		recs, err := ers.Seal([][]byte{sum[:]}, crypto.SHA256, func(root []byte) ([]byte, error) {
			tok, _, err := authority.Token(context.Background(), root, crypto.SHA256)
			return tok, err
		})
		if err != nil {
			t.Fatal(err)
		}
		write(t, docs, name+".xml.ers", string(recs[0]))
		return cert
	}
	now := time.Now()
	late := reseal("late", now.AddDate(-2, 0, -1), now.AddDate(0, 0, -10))
	soon := reseal("soon", now.AddDate(-2, 0, 30), now.Add(-time.Hour))
	lateBefore, err := os.ReadFile(filepath.Join(docs, "late.xml.ers"))
	if err != nil {
		t.Fatal(err)
	}
	stats := map[string]int{}
	for _, n := range []string{"good", "soon"} {
		b, err := os.ReadFile(filepath.Join(docs, n+".xml.ers"))
		if err != nil {
			t.Fatal(err)
		}
		stats[n] = len(b)
	}

	out, stderr := d.mustRun(t, 4, "archive", "renew", "--records", docs)
	for _, want := range []string{
		"late.xml.ers: FailedPrecondition: record 1: the last time-stamp's TSA certificate expired on " + late.NotAfter.UTC().Format(time.RFC3339) + "; a renewal must happen before that",
		"warning: " + filepath.Join(docs, "soon.xml.ers") + ": the last time-stamp's TSA certificate expires on " + soon.NotAfter.UTC().Format(time.RFC3339),
		"1 of 3 records not renewed",
	} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("renew: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(out, "renewed 2 records") || strings.Contains(stderr, "good.xml.ers") {
		t.Fatalf("renew: %s\n%s", out, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(docs, "late.xml.ers")); !bytes.Equal(after, lateBefore) {
		t.Fatal("a refused record was changed")
	}
	for _, n := range []string{"good", "soon"} {
		rec := filepath.Join(docs, n+".xml.ers")
		if b, _ := os.ReadFile(rec); len(b) <= stats[n] {
			t.Fatalf("%s was not renewed", rec)
		}
		if out, _ := d.mustRun(t, 0, "archive", "verify", "--record", rec, "--in", filepath.Join(docs, n+".xml")); !strings.Contains(out, "VALID\n") || !strings.Contains(out, "renew_by:") {
			t.Fatalf("verify %s: %s", n, out)
		}
	}
}
