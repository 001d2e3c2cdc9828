package server

import (
	"context"
	"crypto"
	_ "crypto/sha512" // SHA-384 and SHA-512 for crypto.Hash.New
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/policy"
)

func archiveDocs(h crypto.Hash, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		d := h.New()
		fmt.Fprintf(d, "document %d", i)
		out[i] = d.Sum(nil)
	}
	return out
}

// archiveStamps is the number of time-stamps the ArchiveService has made.
func archiveStamps(t *testing.T, f *fixture) float64 {
	t.Helper()
	var m dto.Metric
	if err := f.srv.d.Metrics.TSA.WithLabelValues("archive", "granted", "").Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// collectSeal reads a Seal or SealStream answer to its end.
func collectSeal(t *testing.T, recv func() (*pecetv1.SealResponse, error)) ([][]byte, *pecetv1.SealResponse) {
	t.Helper()
	var recs [][]byte
	var first *pecetv1.SealResponse
	for {
		r, err := recv()
		if errors.Is(err, io.EOF) {
			return recs, first
		}
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = r
		}
		if int(r.GetFirstIndex()) != len(recs) || len(r.GetRecords()) > archiveChunk {
			t.Fatalf("response from %d with %d records after %d", r.GetFirstIndex(), len(r.GetRecords()), len(recs))
		}
		recs = append(recs, r.GetRecords()...)
	}
}

// renewRPC renews recs through the Renew stream (two requests) and adds
// each answer to its record.
func renewRPC(t *testing.T, ac pecetv1.ArchiveServiceClient, recs, digests [][]byte, h pecetv1.HashAlgorithm) [][]byte {
	t.Helper()
	st, err := ac.Renew(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	mode := pecetv1.RenewRequest_TIMESTAMP
	if digests != nil {
		mode = pecetv1.RenewRequest_HASH_TREE
	}
	half := len(recs) / 2
	first := &pecetv1.RenewRequest{Mode: mode, Hash: h, Records: recs[:half]}
	second := &pecetv1.RenewRequest{Records: recs[half:]}
	if digests != nil {
		first.Digests, second.Digests = digests[:half], digests[half:]
	}
	for _, r := range []*pecetv1.RenewRequest{first, second} {
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, len(recs))
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ats := range r.GetArchiveTimeStamps() {
			i := len(out)
			rec, err := ers.AppendRenewal(recs[i], ats, digests != nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	if len(out) != len(recs) {
		t.Fatalf("%d renewals for %d records", len(out), len(recs))
	}
	return out
}

// TestArchiveRPC seals 2,500 digests (three responses, one time-stamp),
// renews them by time-stamp and by hash tree, and verifies records after
// each step under the named policy; each batch is one audit end line with
// its root and count.
func TestArchiveRPC(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.MaxMessageBytes = 16 << 20 }})
	ac := pecetv1.NewArchiveServiceClient(f.dial(t, "client"))
	tsaCount := func() float64 { return archiveStamps(t, f) }
	const n = 2500
	d256, d512 := archiveDocs(crypto.SHA256, n), archiveDocs(crypto.SHA512, n)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("doc-%d.xml", i)
	}
	st, err := ac.Seal(ctxT(t), &pecetv1.SealRequest{Digests: d256, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	recs, first := collectSeal(t, st.Recv)
	if len(recs) != n || first.GetCount() != n || len(first.GetRoot()) != 32 || first.GetGenTime() == nil || first.GetNames()[7] != "doc-7.xml" {
		t.Fatalf("%d records, first response %d/%x/%v", len(recs), first.GetCount(), first.GetRoot(), first.GetGenTime())
	}
	if got := tsaCount(); got != 1 {
		t.Fatalf("%v time-stamps for sealing one batch", got)
	}
	sealed := first.GetGenTime().AsTime()

	verify := func(t *testing.T, rec []byte, req *pecetv1.VerifyRecordRequest) *pecetv1.VerifyRecordResponse {
		t.Helper()
		req.Record = rec
		if req.Policy == "" {
			req.Policy = "test"
		}
		resp, err := ac.VerifyRecord(ctxT(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	digests := func(i int, hs ...crypto.Hash) []*pecetv1.DocumentDigest {
		var out []*pecetv1.DocumentDigest
		for _, h := range hs {
			dd := map[crypto.Hash][][]byte{crypto.SHA256: d256, crypto.SHA512: d512}[h]
			out = append(out, &pecetv1.DocumentDigest{Hash: hashProto[h], Digest: dd[i]})
		}
		return out
	}
	check := func(t *testing.T, recs [][]byte, stamps int, hs ...crypto.Hash) {
		t.Helper()
		for _, i := range []int{0, 1, 1234, n - 1} {
			resp := verify(t, recs[i], &pecetv1.VerifyRecordRequest{Digests: digests(i, hs...)})
			if resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || !resp.GetExisted().AsTime().Equal(sealed) || len(resp.GetStamps()) != stamps {
				t.Fatalf("record %d: %v existed %v, %d stamps", i, resp.GetVerdict(), resp.GetExisted().AsTime(), len(resp.GetStamps()))
			}
			// Another document: INVALID, DIGEST_MISMATCH.
			resp = verify(t, recs[i], &pecetv1.VerifyRecordRequest{Digests: digests((i+7)%n, hs...)})
			if resp.GetVerdict().GetStatus() != pecetv1.Verdict_INVALID || resp.GetVerdict().GetReasons()[0].GetCode() != "DIGEST_MISMATCH" {
				t.Fatalf("record %d for another document: %v", i, resp.GetVerdict())
			}
		}
	}
	check(t, recs, 1, crypto.SHA256)
	// The content instead of digests.
	if resp := verify(t, recs[3], &pecetv1.VerifyRecordRequest{Content: []byte("document 3")}); resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
		t.Fatalf("by content: %v", resp.GetVerdict())
	}
	// Revocation required and no CRL for the TSA: INDETERMINATE.
	if resp := verify(t, recs[3], &pecetv1.VerifyRecordRequest{Content: []byte("document 3"), Policy: "strict"}); resp.GetVerdict().GetStatus() != pecetv1.Verdict_INDETERMINATE {
		t.Fatalf("strict: %v", resp.GetVerdict())
	}

	recs = renewRPC(t, ac, recs, nil, 0)
	check(t, recs, 2, crypto.SHA256)
	recs = renewRPC(t, ac, recs, d512, pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512)
	check(t, recs, 3, crypto.SHA256, crypto.SHA512)
	if got := tsaCount(); got != 3 {
		t.Fatalf("%v time-stamps for sealing and two renewals", got)
	}
	// The SHA-512 digest missing: the limit is named, no work done.
	_, err = ac.VerifyRecord(ctxT(t), &pecetv1.VerifyRecordRequest{Record: recs[0], Digests: digests(0, crypto.SHA256), Policy: "test"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "SHA-512") {
		t.Fatalf("without the SHA-512 digest: %v", err)
	}
	if resp := verify(t, recs[5], &pecetv1.VerifyRecordRequest{Content: []byte("document 5")}); resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || len(resp.GetHashes()) != 2 {
		t.Fatalf("renewed, by content: %v", resp)
	}

	// SealStream: digests in three requests.
	ss, err := ac.SealStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, part := range [][][]byte{d512[:10], d512[10:1500], d512[1500:]} {
		req := &pecetv1.SealStreamRequest{Digests: part}
		if i == 0 {
			req.Hash = pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512
		}
		if err := ss.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.CloseSend(); err != nil {
		t.Fatal(err)
	}
	srecs, _ := collectSeal(t, ss.Recv)
	if len(srecs) != n {
		t.Fatalf("%d records from SealStream", len(srecs))
	}
	if resp := verify(t, srecs[2000], &pecetv1.VerifyRecordRequest{Digests: digests(2000, crypto.SHA512)}); resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
		t.Fatalf("streamed: %v", resp.GetVerdict())
	}

	// One end line per batch, with its root and count.
	var batches []string
	for _, e := range auditEvents(t, f.auditFile) {
		archive := []string{pecetv1.ArchiveService_Seal_FullMethodName, pecetv1.ArchiveService_SealStream_FullMethodName, pecetv1.ArchiveService_Renew_FullMethodName}
		if slices.Contains(archive, e.RPC) && e.Phase == "end" {
			batches = append(batches, e.RPC+" "+e.Archive)
		}
	}
	if len(batches) != 4 || !strings.Contains(batches[0], fmt.Sprintf("root=%x count=%d", first.GetRoot(), n)) {
		t.Fatalf("audit end lines: %q", batches)
	}
}

// TestArchiveLimits: every limit is refused with InvalidArgument naming
// it, before any time-stamp is made.
func TestArchiveLimits(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.MaxMessageBytes = 16 << 20 }})
	ac := pecetv1.NewArchiveServiceClient(f.dial(t, "gateway"))
	d := archiveDocs(crypto.SHA256, 2)
	seal := func(req *pecetv1.SealRequest) error {
		st, err := ac.Seal(ctxT(t), req)
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	renew := func(reqs ...*pecetv1.RenewRequest) error {
		st, err := ac.Renew(ctxT(t))
		if err != nil {
			return err
		}
		for _, r := range reqs {
			if err := st.Send(r); err != nil {
				break
			}
		}
		_ = st.CloseSend()
		for {
			if _, err := st.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	many := make([][]byte, maxSealDigests+1)
	for i := range many {
		many[i] = d[0]
	}
	rec := func() []byte {
		st, err := ac.Seal(ctxT(t), &pecetv1.SealRequest{Digests: d})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := collectSeal(t, st.Recv)
		return recs[0]
	}()
	rec512 := func() []byte {
		st, err := ac.Seal(ctxT(t), &pecetv1.SealRequest{Digests: archiveDocs(crypto.SHA512, 1), Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := collectSeal(t, st.Recv)
		return recs[0]
	}()
	before := archiveStamps(t, f)
	for _, tc := range []struct {
		name, want string
		call       func() error
	}{
		{"no digests", "at least one", func() error { return seal(&pecetv1.SealRequest{}) }},
		{"too many digests", "at most 100000", func() error { return seal(&pecetv1.SealRequest{Digests: many}) }},
		{"short digest", "digest 1 has 20 bytes", func() error { return seal(&pecetv1.SealRequest{Digests: [][]byte{d[0], d[1][:20]}}) }},
		{"SHA-512 of 32 bytes", "SHA-512 digests have 64", func() error {
			return seal(&pecetv1.SealRequest{Digests: d, Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512})
		}},
		{"unknown hash", "unknown hash", func() error { return seal(&pecetv1.SealRequest{Digests: d, Hash: 9}) }},
		{"names count", "names: 1 for 2", func() error { return seal(&pecetv1.SealRequest{Digests: d, Names: []string{"a"}}) }},
		{"long name", "at most 256", func() error {
			return seal(&pecetv1.SealRequest{Digests: d, Names: []string{"a", strings.Repeat("x", 257)}})
		}},
		{"renew without mode", "mode", func() error { return renew(&pecetv1.RenewRequest{Records: [][]byte{rec}}) }},
		{"renew hash tree without digests", "HASH_TREE needs one per record", func() error {
			return renew(&pecetv1.RenewRequest{Mode: pecetv1.RenewRequest_HASH_TREE, Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512, Records: [][]byte{rec}})
		}},
		{"renew mixed hashes", "separate calls", func() error {
			return renew(&pecetv1.RenewRequest{Mode: pecetv1.RenewRequest_TIMESTAMP, Records: [][]byte{rec}}, &pecetv1.RenewRequest{Records: [][]byte{rec512}})
		}},
		{"renew garbage", "record 1", func() error {
			return renew(&pecetv1.RenewRequest{Mode: pecetv1.RenewRequest_TIMESTAMP, Records: [][]byte{rec, {0x30, 0x00}}})
		}},
		{"renew nothing", "at least one record", func() error { return renew(&pecetv1.RenewRequest{Mode: pecetv1.RenewRequest_TIMESTAMP}) }},
		{"verify without document", "content or its digests", func() error {
			_, err := ac.VerifyRecord(ctxT(t), &pecetv1.VerifyRecordRequest{Record: rec})
			return err
		}},
		{"verify too large", "at most 262144", func() error {
			_, err := ac.VerifyRecord(ctxT(t), &pecetv1.VerifyRecordRequest{Record: make([]byte, ers.MaxRecordBytes+1), Content: []byte("x")})
			return err
		}},
		{"verify unknown policy", "", func() error {
			_, err := ac.VerifyRecord(ctxT(t), &pecetv1.VerifyRecordRequest{Record: rec, Content: []byte("x"), Policy: "nope"})
			if status.Code(err) == codes.NotFound {
				return status.Error(codes.InvalidArgument, "")
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument with %q", err, tc.want)
			}
		})
	}
	if after := archiveStamps(t, f); after != before {
		t.Fatalf("%v time-stamps made for refused calls", after-before)
	}
	// A malformed record is a verdict.
	resp, err := ac.VerifyRecord(ctxT(t), &pecetv1.VerifyRecordRequest{Record: []byte{0x30, 0x00}, Content: []byte("x")})
	if err != nil || resp.GetVerdict().GetStatus() != pecetv1.Verdict_INVALID || resp.GetVerdict().GetReasons()[0].GetCode() != "MALFORMED" {
		t.Fatalf("malformed record: %v %v", resp, err)
	}
}

// TestSealStreamBound: the 1,000,001st digest of a SealStream is refused
// as it arrives.
func TestSealStreamBound(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 32 MB")
	}
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.MaxMessageBytes = 16 << 20 }})
	ac := pecetv1.NewArchiveServiceClient(f.dial(t, "client"))
	st, err := ac.SealStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	part := make([][]byte, 100_000)
	for i := range part {
		part[i] = make([]byte, 32)
	}
	for i := 0; i <= maxArchiveBatch/len(part); i++ {
		if err := st.Send(&pecetv1.SealStreamRequest{Digests: part[:min(len(part), maxArchiveBatch+1-i*len(part))]}); err != nil {
			break // the server has answered already
		}
	}
	_ = st.CloseSend()
	_, err = st.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "more than 1000000") {
		t.Fatalf("got %v", err)
	}
}

// BenchmarkArchiveSeal100k: one Seal of 100,000 SHA-256 digests through
// gRPC (one time-stamp with the SoftHSM TSA key, 100 responses of 1,000
// records); docs/archive.md "Performance" reports the figure.
func BenchmarkArchiveSeal100k(b *testing.B) {
	f := newFixtureOpts(b, fixtureOpts{deps: func(d *Deps) { d.MaxMessageBytes = 16 << 20 }})
	ac := pecetv1.NewArchiveServiceClient(f.dial(b, "client"))
	ds := archiveDocs(crypto.SHA256, maxSealDigests)
	b.ResetTimer()
	for b.Loop() {
		st, err := ac.Seal(context.Background(), &pecetv1.SealRequest{Digests: ds})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			r, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += len(r.GetRecords())
		}
		if n != maxSealDigests {
			b.Fatalf("%d records", n)
		}
	}
	b.ReportMetric(float64(maxSealDigests)*float64(b.N)/b.Elapsed().Seconds(), "docs/s")
}

// renewItems runs one Renew (one request: TIMESTAMP, or HASH_TREE under
// SHA-512 with sha512Docs) and returns each record's answer: its
// ArchiveTimeStamp (nil when refused), status and warning.
func renewItems(t *testing.T, ac pecetv1.ArchiveServiceClient, recs [][]byte, sha512Docs ...[]byte) (ats [][]byte, sts []*pecetv1.ItemStatus, warns []string) {
	t.Helper()
	st, err := ac.Renew(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	req := &pecetv1.RenewRequest{Mode: pecetv1.RenewRequest_TIMESTAMP, Records: recs}
	if sha512Docs != nil {
		req.Mode, req.Hash, req.Digests = pecetv1.RenewRequest_HASH_TREE, pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512, sha512Docs
	}
	if err := st.Send(req); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetStatuses()) != len(r.GetArchiveTimeStamps()) || len(r.GetWarnings()) != len(r.GetArchiveTimeStamps()) {
			t.Fatalf("%d renewals, %d statuses, %d warnings", len(r.GetArchiveTimeStamps()), len(r.GetStatuses()), len(r.GetWarnings()))
		}
		ats = append(ats, r.GetArchiveTimeStamps()...)
		sts = append(sts, r.GetStatuses()...)
		warns = append(warns, r.GetWarnings()...)
	}
	if len(ats) != len(recs) {
		t.Fatalf("%d answers for %d records", len(ats), len(recs))
	}
	return ats, sts, warns
}

// rotateTSA gives the fixture's "tsa" alias a new primary version whose
// certificate the test CA issues as if at issued (valid two years from
// then): the TSA's later tokens carry it.
func rotateTSA(t *testing.T, f *fixture, issued time.Time) *x509.Certificate {
	t.Helper()
	ctx := context.Background()
	v, err := f.store.RotateKey(ctx, "tsa")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.Issue("tsa", devca.TSA, v.Public, issued)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(ctx, "tsa", v.Version, []*x509.Certificate{cert, f.ca.Cert}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.SetPrimaryVersion(ctx, "tsa", v.Version); err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestArchiveRenewInTime: a renewal must come while the last time-stamp's
// TSA certificate is valid (docs/archive.md "Renew in time"). Batch A is
// sealed under a TSA certificate that expires in 40 days, batch B under
// one of two years. Now both renew, A with a warning (within the 90-day
// window); 41 days on (the server's clock) A is refused per item with
// FAILED_PRECONDITION naming the expiry, and B is still renewed, its
// record VALID; with every record refused no time-stamp is made.
func TestArchiveRenewInTime(t *testing.T) {
	f := newFixture(t)
	ac := pecetv1.NewArchiveServiceClient(f.dial(t, "client"))
	now := time.Now()
	short := rotateTSA(t, f, now.AddDate(-2, 0, 40))
	seal := func(docs [][]byte) [][]byte {
		st, err := ac.Seal(ctxT(t), &pecetv1.SealRequest{Digests: docs})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := collectSeal(t, st.Recv)
		return recs
	}
	docs := archiveDocs(crypto.SHA256, 5)
	a := seal(docs[:3])
	rotateTSA(t, f, now)
	b := seal(docs[3:])
	batch := append(slices.Clone(a), b...)

	tests := []struct {
		name      string
		advance   time.Duration
		recs      [][]byte
		refused   []bool
		warned    []bool
		newStamps float64
	}{
		{"before expiry: all renewed, A warned", 0, batch, []bool{false, false, false, false, false}, []bool{true, true, true, false, false}, 1},
		{"after expiry: A refused, B renewed", 41 * 24 * time.Hour, batch, []bool{true, true, true, false, false}, []bool{false, false, false, false, false}, 1},
		{"after expiry, A alone: no time-stamp", 0, a, []bool{true, true, true}, []bool{false, false, false}, 0},
		{"after expiry, hash-tree renewal: A refused, B renewed", 0, batch, []bool{true, true, true, false, false}, []bool{false, false, false, false, false}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Advance(tc.advance)
			before := archiveStamps(t, f)
			hashTree := strings.Contains(tc.name, "hash-tree")
			var d512 [][]byte
			if hashTree {
				d512 = archiveDocs(crypto.SHA512, len(tc.recs))
			}
			ats, sts, warns := renewItems(t, ac, tc.recs, d512...)
			if got := archiveStamps(t, f) - before; got != tc.newStamps {
				t.Fatalf("%v time-stamps", got)
			}
			for i := range tc.recs {
				if tc.refused[i] {
					want := "the last time-stamp's TSA certificate expired on " + short.NotAfter.UTC().Format(time.RFC3339) + "; a renewal must happen before that"
					if codes.Code(sts[i].GetCode()) != codes.FailedPrecondition || !strings.Contains(sts[i].GetMessage(), want) ||
						!strings.HasPrefix(sts[i].GetMessage(), fmt.Sprintf("record %d: ", i)) || len(ats[i]) != 0 {
						t.Fatalf("record %d: %v, %d bytes", i, sts[i], len(ats[i]))
					}
					continue
				}
				if sts[i].GetCode() != 0 || len(ats[i]) == 0 {
					t.Fatalf("record %d: %v", i, sts[i])
				}
				if (warns[i] != "") != tc.warned[i] || (tc.warned[i] && !strings.Contains(warns[i], "expires on "+short.NotAfter.UTC().Format(time.RFC3339))) {
					t.Fatalf("record %d: warning %q", i, warns[i])
				}
				rec, err := ers.AppendRenewal(tc.recs[i], ats[i], hashTree)
				if err != nil {
					t.Fatal(err)
				}
				given := []*pecetv1.DocumentDigest{{Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256, Digest: docs[i]}}
				if hashTree {
					given = append(given, &pecetv1.DocumentDigest{Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512, Digest: d512[i]})
				}
				resp, err := ac.VerifyRecord(ctxT(t), &pecetv1.VerifyRecordRequest{Record: rec, Digests: given, Policy: "test"})
				if err != nil || resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
					t.Fatalf("record %d renewed: %v %v", i, resp.GetVerdict(), err)
				}
			}
		})
	}
}

// TestArchiveRenewWindow: the warning window is
// keys.archive_renewal_warning_days (Deps.KeyPolicy), 90 days by default.
func TestArchiveRenewWindow(t *testing.T) {
	tests := []struct {
		name      string
		days      int // 0: the default
		expiresIn int
		warned    bool
	}{
		{"default 90, expires in 89 days", 0, 89, true},
		{"default 90, expires in 120 days", 0, 120, false},
		{"30 days, expires in 40 days", 30, 40, false},
		{"30 days, expires in 20 days", 30, 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.KeyPolicy.ArchiveRenewalWarningDays = tc.days }})
			ac := pecetv1.NewArchiveServiceClient(f.dial(t, "client"))
			cert := rotateTSA(t, f, time.Now().AddDate(-2, 0, tc.expiresIn))
			st, err := ac.Seal(ctxT(t), &pecetv1.SealRequest{Digests: archiveDocs(crypto.SHA256, 2)})
			if err != nil {
				t.Fatal(err)
			}
			recs, _ := collectSeal(t, st.Recv)
			_, sts, warns := renewItems(t, ac, recs)
			for i := range recs {
				if sts[i].GetCode() != 0 || (warns[i] != "") != tc.warned {
					t.Fatalf("record %d: %v, warning %q", i, sts[i], warns[i])
				}
				if tc.warned && !strings.Contains(warns[i], "expires on "+cert.NotAfter.UTC().Format(time.RFC3339)) {
					t.Fatalf("record %d: warning %q", i, warns[i])
				}
			}
		})
	}
}

// TestArchiveRenewAlgorithmSuite: under a default policy whose ETSI TS 119
// 312 suite ends EC keys (the fixture's TSA and CA keys) in 30 days, a
// renewal now is made; 31 days on (the server's clock), with the TSA
// certificate still valid, it is refused per item naming the suite.
func TestArchiveRenewAlgorithmSuite(t *testing.T) {
	end := time.Now().AddDate(0, 0, 30).UTC().Format(time.DateOnly)
	suite, err := policy.ParseAlgorithmSuite([]byte(`<SecuritySuitabilityPolicy><Algorithm><AlgorithmIdentifier><Name>ecPublicKey</Name>` +
		`<ObjectIdentifier>1.2.840.10045.2.1</ObjectIdentifier></AlgorithmIdentifier><Evaluation><Validity><Start>2000-01-01</Start><End>` + end + `</End></Validity></Evaluation></Algorithm></SecuritySuitabilityPolicy>`))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		info, err := d.Policies.(*policy.Engine).Describe("test", time.Now())
		if err != nil || len(info.Anchors) == 0 {
			t.Fatalf("fixture policy: %v", err)
		}
		e, err := policy.NewEngine("test", &policy.Policy{Name: "test", Anchors: []*x509.Certificate{info.Anchors[0].Cert}, Revocation: policy.RevocationOff,
			Algorithms: &policy.AlgorithmRules{Suite: suite}})
		if err != nil {
			t.Fatal(err)
		}
		d.Validator, d.Policies = e, e
	}})
	ac := pecetv1.NewArchiveServiceClient(f.dial(t, "client"))
	st, err := ac.Seal(ctxT(t), &pecetv1.SealRequest{Digests: archiveDocs(crypto.SHA256, 2)})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := collectSeal(t, st.Recv)
	tests := []struct {
		name    string
		advance time.Duration
		refused bool
	}{
		{"while the suite accepts EC", 0, false},
		{"after the suite ended EC", 31 * 24 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Advance(tc.advance)
			ats, sts, _ := renewItems(t, ac, recs)
			for i := range recs {
				refused := codes.Code(sts[i].GetCode()) == codes.FailedPrecondition && len(ats[i]) == 0 &&
					strings.Contains(sts[i].GetMessage(), "a renewal must happen while its algorithms are in the policy's suite")
				if refused != tc.refused || (!tc.refused && sts[i].GetCode() != 0) {
					t.Fatalf("record %d: %v", i, sts[i])
				}
			}
		})
	}
}
