package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/perf/loadgen"
	"github.com/pecet-hsm/pecet/tsa"
)

// Batch forms of sign, timestamp and bench (docs/api.md "Batch calls").
//
// A digest file has one hex digest per line; blank lines and lines that
// start with # are skipped, and anything after the first blank on a line
// is ignored, so `sha256sum FILES > list` is a digest file. Each digest's
// output goes into the --out directory as LINE.p7s (or .sig with --raw,
// .tsr for time-stamps), LINE being the digest's line number in the file
// (six digits, from 000001), so every output names its input.

// maxBatch is the most items per request the CLI sends (the server's
// bound for SignDigests and TimestampBatch); defaultBatchSize is what it
// sends unless --batch-size says otherwise. Each item costs one token of
// the client's limits.rate_per_client, and a request of more items than
// limits.burst is refused (docs/security.md "Batch calls and the rate
// limit"), so the default stays within the burst of the example
// configuration (100).
const (
	maxBatch         = 1000
	defaultBatchSize = 100
)

// batchSizeFlag adds --batch-size to a command with a batch form.
func batchSizeFlag(fs *flag.FlagSet) *int {
	return fs.Int("batch-size", defaultBatchSize, "with a digest file: digests per request (1 to 1000); each costs one token of the client's rate limit, and a request above the server's limits.burst is refused")
}

// checkBatchSize is the usage error for a --batch-size out of range.
func checkBatchSize(fs *flag.FlagSet, n int) int {
	if n < 1 || n > maxBatch {
		return usageErr(fs, "--batch-size %d: between 1 and %d", n, maxBatch)
	}
	return -1
}

// maxDigestLine bounds one line of a digest file.
const maxDigestLine = 4 << 10

// digestLine is one digest of a digest file and its line number.
type digestLine struct {
	line   int
	digest []byte
}

// readDigestFile reads a digest file ("-": stdin); a line that is not hex
// is a usage error naming it. Lengths are the server's to judge, per item.
func readDigestFile(path string) ([]digestLine, error) {
	r := io.Reader(os.Stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxDigestLine)
	var out []digestLine
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		d, err := hex.DecodeString(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: not a hex digest", path, n)
		}
		out = append(out, digestLine{line: n, digest: d})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w (a line has at most %d bytes)", path, err, maxDigestLine)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no digest", path)
	}
	return out, nil
}

// outName is the output file of the digest on line n.
func outName(dir string, n int, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%06d%s", n, ext))
}

// batchOutDir checks --out for a batch: a directory, made if absent.
func batchOutDir(fs *flag.FlagSet, out string) (string, int) {
	if out == "" || out == "-" {
		return "", usageErr(fs, "--out DIR is required with a digest file: one output file per digest goes there")
	}
	if err := os.MkdirAll(out, 0o755); err != nil { //nolint:gosec // an ordinary user directory, as --out files are ordinary user files
		return "", usageErr(fs, "--out: %v", err)
	}
	return out, -1
}

// signBatchFlags are sign's flags for a digest file.
type signBatchFlags struct {
	file *string
	raw  *bool
	size *int
}

func addSignBatchFlags(fs *flag.FlagSet) signBatchFlags {
	return signBatchFlags{
		file: fs.String("digest-file", "", "sign each hex digest of this `file` (one per line, as sha256sum writes them; - for stdin) into --out DIR as LINE.p7s, in batches over one stream"),
		raw:  fs.Bool("raw", false, "with --digest-file: bare signatures (RSA PKCS#1 v1.5, ECDSA DER) as LINE.sig instead of CMS"),
		size: batchSizeFlag(fs),
	}
}

// runSignDigestFile is `pecet sign --digest-file`: SignDigestsStream, in
// requests of --batch-size digests, responses written as they come. The exit
// status is 4 when any digest failed (each is named on stderr), after the
// others were written. --timeout bounds the whole run.
func runSignDigestFile(fs *flag.FlagSet, c *conn, bf signBatchFlags, req *pecetv1.SignDigestsRequest, asPEM bool, out string, conflicting bool) int {
	if conflicting {
		return usageErr(fs, "--digest-file does not go with --in, --digest or --attached")
	}
	req.Raw = *bf.raw
	if code := checkBatchSize(fs, *bf.size); code >= 0 {
		return code
	}
	size := *bf.size
	if req.Raw && (req.Timestamp || asPEM) {
		return usageErr(fs, "--raw does not go with --timestamp or --pem: a bare signature has neither")
	}
	dir, code := batchOutDir(fs, out)
	if code >= 0 {
		return code
	}
	lines, err := readDigestFile(*bf.file)
	if err != nil {
		return usageErr(fs, "--digest-file: %v", err)
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("sign", err)
	}
	defer done()
	st, err := cc.Sign.SignDigestsStream(ctx)
	if err != nil {
		return fail("sign", err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for i := 0; i < len(lines); i += size {
			r := &pecetv1.SignDigestsRequest{}
			if i == 0 {
				r.Key, r.Version, r.Hash, r.Raw, r.Timestamp = req.GetKey(), req.GetVersion(), req.GetHash(), req.GetRaw(), req.GetTimestamp()
			}
			for _, l := range lines[i:min(i+size, len(lines))] {
				r.Digests = append(r.Digests, l.digest)
			}
			if err := st.Send(r); err != nil {
				sendErr <- err // the stream's status comes from Recv
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	ext := ".p7s"
	if req.Raw {
		ext = ".sig"
	}
	var failed, written int
	var resp *pecetv1.SignDigestsResponse
	for written+failed < len(lines) {
		resp, err = st.Recv()
		if err != nil {
			return fail("sign", err)
		}
		for i, r := range resp.GetResults() {
			// first_item is the digests answered before: the server's
			// count, checked against what was sent before it is an index.
			first := resp.GetFirstItem()
			if first > uint64(len(lines)) || uint64(i) >= uint64(len(lines))-first {
				return fail("sign", errors.New("the server answered more digests than were sent"))
			}
			n := int(first) + i //nolint:gosec // first < len(lines), checked above
			if r.GetStatus().GetCode() != 0 {
				failed++
				fmt.Fprintf(os.Stderr, "pecet sign: line %d: %s: %s\n", lines[n].line, codes.Code(r.GetStatus().GetCode()), r.GetStatus().GetMessage())
				continue
			}
			sig := r.GetSignature()
			if asPEM {
				sig = pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: sig})
			}
			if err := writeOutput(outName(dir, lines[n].line, ext), sig); err != nil {
				fmt.Fprintf(os.Stderr, "pecet sign: %v\n", err)
				return exitService
			}
			written++
		}
	}
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return fail("sign", err)
	}
	if c.json {
		printJSON(map[string]any{"key": resp.GetKey(), "version": resp.GetVersion(), "signing_time": resp.GetSigningTime().AsTime(),
			"batch": resp.GetBatch(), "signed": written, "failed": failed, "out": dir})
	} else {
		fmt.Fprintf(os.Stderr, "signed %d of %d digests with %s version %d -> %s/LINE%s\n", written, len(lines), resp.GetKey(), resp.GetVersion(), dir, ext)
	}
	if failed > 0 {
		return exitService
	}
	return exitOK
}

// runTimestampBatch is `pecet timestamp --batch FILE`: TimestampBatch
// calls of size imprints, one LINE.tsr (the TimeStampResp, DER) per
// granted digest. With nonce, each imprint gets its own random nonce and
// its token must echo it. Exit 4 when any digest was refused or rejected.
func runTimestampBatch(fs *flag.FlagSet, c *conn, file string, size int, tmpl *pecetv1.TimestampRequest, nonce bool, out string, conflicting bool) int {
	if conflicting {
		return usageErr(fs, "--batch does not go with --in or --digest")
	}
	if code := checkBatchSize(fs, size); code >= 0 {
		return code
	}
	dir, code := batchOutDir(fs, out)
	if code >= 0 {
		return code
	}
	lines, err := readDigestFile(file)
	if err != nil {
		return usageErr(fs, "--batch: %v", err)
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("timestamp", err)
	}
	defer done()
	var granted, failed int
	for i := 0; i < len(lines); i += size {
		part := lines[i:min(i+size, len(lines))]
		req := &pecetv1.TimestampBatchRequest{}
		for _, l := range part {
			r := &pecetv1.TimestampRequest{Digest: l.digest, Hash: tmpl.GetHash(), CertReq: tmpl.GetCertReq(), Policy: tmpl.GetPolicy()}
			if nonce {
				r.Nonce = make([]byte, 8)
				if _, err := rand.Read(r.Nonce); err != nil {
					return fail("timestamp", err)
				}
				r.Nonce[0] |= 1 // no leading zero: the token echoes the integer
			}
			req.Requests = append(req.Requests, r)
		}
		resp, err := cc.Timestamp.TimestampBatch(ctx, req)
		if err != nil {
			return fail("timestamp", err)
		}
		for j, r := range resp.GetResults() {
			if j >= len(part) {
				return fail("timestamp", errors.New("the server answered more imprints than were sent"))
			}
			line := part[j].line
			switch {
			case r.GetStatus().GetCode() != 0:
				failed++
				fmt.Fprintf(os.Stderr, "pecet timestamp: line %d: %s: %s\n", line, codes.Code(r.GetStatus().GetCode()), r.GetStatus().GetMessage())
				continue
			case r.GetResponse().GetStatus() != pecetv1.TimestampResponse_GRANTED:
				failed++
				fmt.Fprintf(os.Stderr, "pecet timestamp: line %d: rejected (%s): %s\n", line, r.GetResponse().GetFailureInfo(), r.GetResponse().GetStatusText())
				continue
			}
			if nonce {
				info, err := tokenInfo(r.GetResponse().GetToken())
				if err != nil || info.Nonce == nil || info.Nonce.Cmp(new(big.Int).SetBytes(req.Requests[j].GetNonce())) != 0 {
					failed++
					fmt.Fprintf(os.Stderr, "pecet timestamp: line %d: the token does not echo the nonce sent\n", line)
					continue
				}
			}
			if err := writeOutput(outName(dir, line, ".tsr"), r.GetResponse().GetResponse()); err != nil {
				fmt.Fprintf(os.Stderr, "pecet timestamp: %v\n", err)
				return exitService
			}
			granted++
		}
	}
	if c.json {
		printJSON(map[string]any{"granted": granted, "failed": failed, "out": dir})
	} else {
		fmt.Fprintf(os.Stderr, "time-stamped %d of %d digests -> %s/LINE.tsr\n", granted, len(lines), dir)
	}
	if failed > 0 {
		return exitService
	}
	return exitOK
}

// The bench operations of the batch RPCs: each call carries --batch items
// and the report counts items (batchReport).
func init() {
	benchOps["sign-digests"] = benchOp{role: "client", key: "client-sign", purpose: "SIGN", batch: true,
		prepare: func(_ context.Context, _ *client.Conn, key string, body []byte, o benchOpts) (benchCall, error) {
			req := &pecetv1.SignDigestsRequest{Key: key}
			for i := range o.batch {
				sum := sha256.Sum256(append(body, byte(i), byte(i>>8)))
				req.Digests = append(req.Digests, sum[:])
			}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				r, err := cc.Sign.SignDigests(ctx, req)
				if err != nil {
					return err
				}
				return checkItems(len(r.GetResults()), o.batch, func(i int) *pecetv1.ItemStatus { return r.GetResults()[i].GetStatus() })
			}, nil
		}}
	// --key names the TSA key only for --baseline, as for timestamp.
	benchOps["timestamp-batch"] = benchOp{role: "client", key: "tsa", purpose: "TIMESTAMP", batch: true,
		prepare: func(_ context.Context, _ *client.Conn, _ string, body []byte, o benchOpts) (benchCall, error) {
			req := &pecetv1.TimestampBatchRequest{}
			for i := range o.batch {
				sum := sha256.Sum256(append(body, byte(i), byte(i>>8)))
				req.Requests = append(req.Requests, &pecetv1.TimestampRequest{Digest: sum[:], Nonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}, CertReq: true})
			}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				r, err := cc.Timestamp.TimestampBatch(ctx, req)
				if err != nil {
					return err
				}
				res := r.GetResults()
				if err := checkItems(len(res), o.batch, func(i int) *pecetv1.ItemStatus { return res[i].GetStatus() }); err != nil {
					return err
				}
				for _, x := range res {
					switch {
					case x.GetResponse().GetStatus() == pecetv1.TimestampResponse_REJECTION && x.GetResponse().GetFailureInfo() == tsa.FailSystemFailure.String():
						return &loadgen.Refused{Code: x.GetResponse().GetFailureInfo(), Msg: x.GetResponse().GetStatusText()}
					case x.GetResponse().GetStatus() != pecetv1.TimestampResponse_GRANTED:
						return loadgen.Wrong("time-stamp not granted: %s", x.GetResponse().GetFailureInfo())
					}
				}
				return nil
			}, nil
		}}
}

// checkItems: a batch answer has one OK result per item.
func checkItems(got, want int, status func(int) *pecetv1.ItemStatus) error {
	if got != want {
		return loadgen.Wrong("%d results for %d items", got, want)
	}
	for i := range got {
		if st := status(i); st.GetCode() != 0 {
			return loadgen.Wrong("item %d: %s: %s", i, codes.Code(st.GetCode()), st.GetMessage())
		}
	}
	return nil
}

// batchReport turns a batch op's report from calls into items: ops and
// ops_per_s count items (calls and calls_per_s keep the calls), and the
// ratios compare the item rate with the raw token rate (one token
// operation per item). A call costs batch token operations plus one
// no-op call, so the ceiling per item is 1/(1/raw + 1/(noop*batch)).
// Latencies stay per call.
func batchReport(out map[string]any, res loadgen.Result, batch int, baseline bool) {
	b := float64(batch)
	out["batch"], out["calls"], out["calls_per_s"] = batch, res.Ops, res.Rate()
	out["ops"], out["ops_per_s"] = res.Ops*int64(batch), res.Rate()*b
	if !baseline {
		return
	}
	raw, _ := out["baseline_ops_per_s"].(float64)
	noop, _ := out["noop_ops_per_s"].(float64)
	ceil := ceiling(raw, noop*b)
	out["ceiling_ops_per_s"], out["ratio"], out["ceiling_ratio"] = ceil, 0.0, 0.0
	if raw > 0 {
		out["ratio"] = res.Rate() * b / raw
	}
	if ceil > 0 {
		out["ceiling_ratio"] = res.Rate() * b / ceil
	}
}

// itemParallelism is how many token operations a batch load has in flight
// in pecetd: each call runs its items on at most `sessions` goroutines
// (internal/server: the token's session pool), and all calls share that
// pool, so conc calls of batch items keep min(conc*min(batch, sessions),
// sessions) token operations going. The raw baseline of a batch op runs at
// that parallelism, so that its ratio compares like with like: the raw
// rate at the callers' concurrency (4 for 4 calls of 64 items) is a
// different measurement from the 16 sessions the items are signed on, and
// on a shared machine more threads of SoftHSM also take a larger share of
// the CPU (docs/performance.md "Batch calls").
func itemParallelism(conc, batch, sessions int) int {
	if sessions < 1 {
		sessions = config.DefaultMaxSessions
	}
	return min(conc*min(batch, sessions), sessions)
}

// batchBaselineConcurrency reads the session pool size (token.max_sessions)
// from the config pecetd bench-token opens and returns itemParallelism.
func batchBaselineConcurrency(devDir, cfgPath string, conc, batch int) (int, error) {
	if cfgPath == "" {
		if devDir == "" {
			devDir = os.Getenv("PECET_DEV_DIR")
		}
		if devDir == "" {
			devDir = client.DefaultDevDir
		}
		cfgPath = filepath.Join(devDir, "pecet.yaml")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return 0, err
	}
	return itemParallelism(conc, batch, cfg.Token.MaxSessions), nil
}
