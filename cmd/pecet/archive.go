package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/internal/perf/loadgen"
)

// Limits of the ArchiveService (api/pecet/v1/archive.proto): a batch above
// sealUnaryMax goes by SealStream; requests carry at most archivePart
// digests or records so each stays far below the message limit.
const (
	sealUnaryMax = 100_000
	archivePart  = 1000
	recordExt    = ".ers"
)

// pecet archive (docs/archive.md): seal proves a batch of documents
// existed with one time-stamp and writes NAME.ers beside each document (or
// under --out); renew renews the records of a folder with one new
// time-stamp (--hash: a hash-tree renewal under that algorithm, which reads
// the documents), skipping with exit 4 a record whose last time-stamp is no
// longer valid and warning when its TSA certificate expires soon; verify
// checks a record for its document and prints when the next renewal is
// due (docs/archive.md "Renew in time"). Only digests leave this machine. The rows are in main.go's command table.

// The bench operation seal (pecet bench --op seal --batch N): one Seal of
// N distinct digests a call; bench prints items/s beside ops/s.
func init() {
	benchOps["seal"] = benchOp{role: "client", key: "tsa", purpose: "TIMESTAMP",
		prepare: func(_ context.Context, _ *client.Conn, _ string, _ []byte, o benchOpts) (benchCall, error) {
			if o.batch < 1 || o.batch > sealUnaryMax {
				return nil, fmt.Errorf("--batch %d: use 1 to %d", o.batch, sealUnaryMax)
			}
			ds := make([][]byte, o.batch)
			for i := range ds {
				sum := sha256.Sum256(fmt.Appendf(nil, "bench document %d", i))
				ds[i] = sum[:]
			}
			req := &pecetv1.SealRequest{Digests: ds}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				st, err := cc.Archive.Seal(ctx, req)
				if err != nil {
					return err
				}
				n := 0
				for {
					r, err := st.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						return err
					}
					n += len(r.GetRecords())
				}
				if n != len(ds) {
					return loadgen.Wrong("%d records for %d digests", n, len(ds))
				}
				return nil
			}, nil
		}}
}

// parseWithArgs parses flags that may come before, between or after
// positional arguments (seal's files), and returns the positional ones.
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, int) {
	if probe != nil {
		probe(fs, true)
		return nil, exitOK
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK
			}
			return nil, exitUsage
		}
		if fs.NArg() == 0 {
			return pos, -1
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// documents lists the files to seal: the regular files of each DIR (not
// its subfolders, not *.ers) and each FILE, sorted within a folder.
func documents(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		var files []string
		for _, e := range ents {
			// Not a record, and not a record being written (createOutput's
			// hidden .NAME.ers.*.part files).
			if e.Type().IsRegular() && !strings.HasSuffix(e.Name(), recordExt) && !strings.HasSuffix(e.Name(), ".part") {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out, nil
}

func runArchiveSeal(args []string) int {
	fs, c := newFlags("archive seal", "archive seal [--out DIR] [--hash sha256|sha384|sha512] [--force] DIR|FILE...", "client")
	out := fs.String("out", "", "write the records under this `DIR` (default: NAME.ers beside each document)")
	hash := fs.String("hash", "sha256", "digest `algorithm`: sha256, sha384, sha512")
	force := fs.Bool("force", false, "replace records that exist (their renewals and earlier proof of existence are lost)")
	pos, code := parseWithArgs(fs, args)
	if code >= 0 {
		return code
	}
	h, ph, ok := hashOf(*hash)
	if !ok {
		return usageErr(fs, "--hash %q: use sha256, sha384 or sha512", *hash)
	}
	if len(pos) == 0 {
		return usageErr(fs, "give the documents: a folder or files")
	}
	docs, err := documents(pos)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	if len(docs) == 0 {
		return usageErr(fs, "no documents in %s", strings.Join(pos, " "))
	}
	dest := make([]string, len(docs))
	seen := map[string]string{}
	for i, d := range docs {
		dest[i] = d + recordExt
		if *out != "" {
			dest[i] = filepath.Join(*out, filepath.Base(d)+recordExt)
		}
		if other, dup := seen[dest[i]]; dup {
			return usageErr(fs, "%s and %s would both write %s", other, d, dest[i])
		}
		// A record that exists may hold renewals and an earlier proof of
		// existence: a new seal would replace them with a later one.
		if _, err := os.Lstat(dest[i]); err == nil && !*force {
			return usageErr(fs, "%s exists (a record's renewals and its earlier proof would be lost): renew it with pecet archive renew, or give --force", dest[i])
		}
		seen[dest[i]] = d
	}
	digests := make([][]byte, len(docs))
	for i, d := range docs {
		if digests[i], err = digestOfFile(h, d); err != nil {
			return usageErr(fs, "%v", err)
		}
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("archive seal", err)
	}
	defer done()
	var recv func() (*pecetv1.SealResponse, error)
	if len(docs) <= sealUnaryMax {
		names := make([]string, len(docs))
		for i, d := range docs {
			names[i] = filepath.Base(d)
			if len(names[i]) > 256 {
				names = nil // names are only echoed; long ones are left out
				break
			}
		}
		st, err := cc.Archive.Seal(ctx, &pecetv1.SealRequest{Hash: ph, Digests: digests, Names: names})
		if err != nil {
			return fail("archive seal", err)
		}
		recv = st.Recv
	} else {
		st, err := cc.Archive.SealStream(ctx)
		if err != nil {
			return fail("archive seal", err)
		}
		for from := 0; from < len(digests); from += archivePart {
			req := &pecetv1.SealStreamRequest{Digests: digests[from:min(from+archivePart, len(digests))]}
			if from == 0 {
				req.Hash = ph
			}
			if err := st.Send(req); err != nil {
				break // the answer says why
			}
		}
		if err := st.CloseSend(); err != nil {
			return fail("archive seal", err)
		}
		recv = st.Recv
	}
	var first *pecetv1.SealResponse
	n := 0
	for {
		resp, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail("archive seal", err)
		}
		if first == nil {
			first = resp
		}
		if int(resp.GetFirstIndex()) != n || n+len(resp.GetRecords()) > len(docs) {
			return fail("archive seal", fmt.Errorf("the server answered records out of order"))
		}
		for _, rec := range resp.GetRecords() {
			if err := writeOutput(dest[n], rec); err != nil {
				return fail("archive seal", err)
			}
			n++
		}
	}
	if n != len(docs) {
		return fail("archive seal", fmt.Errorf("%d records for %d documents", n, len(docs)))
	}
	at := first.GetGenTime().AsTime()
	if c.json {
		printJSON(map[string]any{"documents": n, "gen_time": at, "root": fmt.Sprintf("%x", first.GetRoot()), "hash": h.String()})
	} else {
		fmt.Printf("sealed %d documents at %s (root %x, %v); records: %s ...\n", n, at.Format(time.RFC3339Nano), first.GetRoot(), h, dest[0])
	}
	return exitOK
}

func runArchiveRenew(args []string) int {
	fs, c := newFlags("archive renew", "archive renew --records DIR [--docs DIR] [--hash sha256|sha384|sha512]", "client")
	dir := fs.String("records", "", "`DIR` of NAME.ers records of one batch, renewed in place (required)")
	docsDir := fs.String("docs", "", "`DIR` of the documents for --hash (default: beside the records)")
	hash := fs.String("hash", "", "hash-tree renewal under this `algorithm` (reads the documents); default: a time-stamp renewal")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *dir == "" {
		return usageErr(fs, "--records DIR is required")
	}
	var h crypto.Hash
	var ph pecetv1.HashAlgorithm
	if *hash != "" {
		var ok bool
		if h, ph, ok = hashOf(*hash); !ok {
			return usageErr(fs, "--hash %q: use sha256, sha384 or sha512", *hash)
		}
	}
	if *docsDir == "" {
		*docsDir = *dir
	}
	recs, err := filepath.Glob(filepath.Join(*dir, "*"+recordExt))
	if err != nil || len(recs) == 0 {
		return usageErr(fs, "no *%s records in %s", recordExt, *dir)
	}
	sort.Strings(recs)
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("archive renew", err)
	}
	defer done()
	st, err := cc.Archive.Renew(ctx)
	if err != nil {
		return fail("archive renew", err)
	}
	mode := pecetv1.RenewRequest_TIMESTAMP
	if *hash != "" {
		mode = pecetv1.RenewRequest_HASH_TREE
	}
	// The records are read again when their renewals arrive: the client
	// holds one request's worth at a time, as the server holds one hash a
	// record.
	var (
		sentMu sync.Mutex
		sent   = make([][32]byte, 0, len(recs))
	)
	sendErr := func() error {
		for from := 0; from < len(recs); from += archivePart {
			req := &pecetv1.RenewRequest{}
			if from == 0 {
				req.Mode, req.Hash = mode, ph
			}
			for _, p := range recs[from:min(from+archivePart, len(recs))] {
				rec, err := readInput(p, ers.MaxRecordBytes)
				if err != nil {
					return err
				}
				req.Records = append(req.Records, rec)
				sentMu.Lock()
				sent = append(sent, sha256.Sum256(rec))
				sentMu.Unlock()
				if mode == pecetv1.RenewRequest_HASH_TREE {
					doc := filepath.Join(*docsDir, strings.TrimSuffix(filepath.Base(p), recordExt))
					d, err := digestOfFile(h, doc)
					if err != nil {
						return err
					}
					req.Digests = append(req.Digests, d)
				}
			}
			if err := st.Send(req); err != nil {
				return nil // the answer says why
			}
		}
		return nil
	}()
	if sendErr != nil {
		return usageErr(fs, "%v", sendErr)
	}
	if err := st.CloseSend(); err != nil {
		return fail("archive renew", err)
	}
	n, failed := 0, 0
	var first *pecetv1.RenewResponse
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail("archive renew", err)
		}
		if first == nil {
			first = resp
		}
		if int(resp.GetFirstIndex()) != n || n+len(resp.GetArchiveTimeStamps()) > len(recs) {
			return fail("archive renew", fmt.Errorf("the server answered renewals out of order"))
		}
		for i, ats := range resp.GetArchiveTimeStamps() {
			// A record whose last time-stamp is no longer valid is not
			// renewed (docs/archive.md "Renew in time"): its file stays
			// as it is, the others go on.
			if i < len(resp.GetStatuses()) && resp.GetStatuses()[i].GetCode() != 0 {
				st := resp.GetStatuses()[i]
				fmt.Fprintf(os.Stderr, "pecet archive renew: %s: %s: %s\n", recs[n], codes.Code(st.GetCode()), st.GetMessage())
				failed++
				n++
				continue
			}
			if i < len(resp.GetWarnings()) && resp.GetWarnings()[i] != "" {
				fmt.Fprintf(os.Stderr, "warning: %s: %s\n", recs[n], resp.GetWarnings()[i])
			}
			sentMu.Lock()
			ok := n < len(sent)
			var sum [32]byte
			if ok {
				sum = sent[n]
			}
			sentMu.Unlock()
			if !ok {
				return fail("archive renew", fmt.Errorf("the server answered a record not yet sent"))
			}
			if err := appendRenewalFile(recs[n], sum, ats, mode == pecetv1.RenewRequest_HASH_TREE); err != nil {
				return fail("archive renew", err)
			}
			n++
		}
	}
	if n != len(recs) {
		return fail("archive renew", fmt.Errorf("%d renewals for %d records", n, len(recs)))
	}
	renewed := n - failed
	switch {
	case c.json:
		out := map[string]any{"records": renewed, "refused": failed, "mode": mode.String()}
		if first.GetGenTime() != nil {
			out["gen_time"], out["root"] = first.GetGenTime().AsTime(), fmt.Sprintf("%x", first.GetRoot())
		}
		printJSON(out)
	case renewed > 0:
		fmt.Printf("renewed %d records (%s) at %s (root %x)\n", renewed, mode, first.GetGenTime().AsTime().Format(time.RFC3339Nano), first.GetRoot())
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "pecet archive renew: %d of %d records not renewed: their last time-stamp is no longer valid\n", failed, n)
		return exitService
	}
	return exitOK
}

// appendRenewalFile adds a renewal to the record in path, replacing the
// file only when the new record is whole (written beside it, renamed).
// sent is the SHA-256 of the record as it was sent: a file changed since
// (another renew, a forced seal) is left alone, since the renewal covers
// what was sent, not what is there now.
func appendRenewalFile(path string, sent [32]byte, ats []byte, hashTree bool) error {
	rec, err := readInput(path, ers.MaxRecordBytes)
	if err != nil {
		return err
	}
	if sha256.Sum256(rec) != sent {
		return fmt.Errorf("%s changed while it was renewed: left as it is; renew it again", path)
	}
	renewed, err := ers.AppendRenewal(rec, ats, hashTree)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	o, err := createOutput(path, 0o644)
	if err != nil {
		return err
	}
	if _, err := o.Write(renewed); err != nil {
		o.abort()
		return err
	}
	return o.commit()
}

func runArchiveVerify(args []string) int {
	fs, c := newFlags("archive verify", "archive verify --record FILE.ers --in FILE [--policy NAME] [--at RFC3339]", "client")
	recPath := fs.String("record", "", "the evidence record `file` (required)")
	in := fs.String("in", "", "the document `file` (required; only its digests are sent)")
	pol := fs.String("policy", "", "policy `name` that judges the time-stamps (default: the server's default)")
	atFlag := fs.String("at", "", "validation `time` (RFC 3339) for the last time-stamp; default now")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *recPath == "" || *in == "" {
		return usageErr(fs, "--record FILE.ers and --in FILE are required")
	}
	rec, err := readInput(*recPath, ers.MaxRecordBytes)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	r, err := ers.Parse(rec)
	if err != nil {
		fmt.Printf("INVALID\n  MALFORMED: %v\n", err)
		return exitInvalid
	}
	hs, err := r.ChainHashes()
	if err != nil {
		fmt.Printf("INVALID\n  MALFORMED: %v\n", err)
		return exitInvalid
	}
	req := &pecetv1.VerifyRecordRequest{Record: rec, Policy: *pol}
	seen := map[crypto.Hash]bool{}
	for _, h := range hs {
		if seen[h] {
			continue
		}
		seen[h] = true
		_, ph, _ := hashOf(strings.ReplaceAll(strings.ToLower(h.String()), "-", ""))
		d, err := digestOfFile(h, *in)
		if err != nil {
			return usageErr(fs, "%v", err)
		}
		req.Digests = append(req.Digests, &pecetv1.DocumentDigest{Hash: ph, Digest: d})
	}
	if *atFlag != "" {
		t, err := time.Parse(time.RFC3339, *atFlag)
		if err != nil {
			return usageErr(fs, "--at: %v", err)
		}
		req.At = timestamppb.New(t)
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("archive verify", err)
	}
	defer done()
	resp, err := cc.Archive.VerifyRecord(ctx, req)
	if err != nil {
		return fail("archive verify", err)
	}
	var stamps []time.Time
	for _, s := range resp.GetStamps() {
		stamps = append(stamps, s.AsTime())
	}
	extra, due := extraField{}, extraField{}
	if resp.GetExisted() != nil {
		extra = extraField{label: "existed", text: resp.GetExisted().AsTime().Format(time.RFC3339), json: map[string]any{"existed": resp.GetExisted().AsTime(), "stamps": stamps}}
		// When the next renewal is due: before the last time-stamp's TSA
		// certificate expires (docs/archive.md "Renew in time").
		if by, _, ok := r.RenewBy(); ok {
			due = extraField{label: "renew_by", text: by.UTC().Format(time.RFC3339) + " (the last time-stamp's TSA certificate expires)", json: by}
		}
	}
	return printVerdictFor(resp.GetVerdict(), c.json, extra, due)
}
