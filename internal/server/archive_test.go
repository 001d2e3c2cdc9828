package server

import (
	"context"
	"crypto"
	_ "crypto/sha512" // SHA-384 and SHA-512 for crypto.Hash.New
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/ers"
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
