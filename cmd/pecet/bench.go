package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/perf/loadgen"
	"github.com/pecet-hsm/pecet/tsa"
)

// benchOp prepares one operation against pecetd: setup runs once (e.g. a
// signature to verify), call runs in the loop.
type benchOp struct {
	role    string // dev role certificate the op needs
	role2   string // a second dev role some calls need (mix: decrypt as gateway)
	key     string // default key alias (a dev key)
	purpose string // key purpose for the baseline (pecetd bench-token --purpose)
	bytes   bool   // MB/s is meaningful
	batch   bool   // each call carries --batch items; the report counts items (batch.go)
	prepare func(ctx context.Context, cc *client.Conn, key string, body []byte, o benchOpts) (benchCall, error)
}

// benchOpts are the flags some operations take.
type benchOpts struct {
	cipher    string // cipherNames key
	transport string // transportNames key
	tsaURL    string // timestamp-http: pecetd's POST /tsa
	conc      int    // callers, for the HTTP client's idle connections
	batch     int    // items per call of the batch ops
	// second are connections with role2's certificate.
	second []*client.Conn
	// notes[w] is what worker w's last call tells the record.
	notes []callNote
	// record records a call made outside the load (setup).
	record func(phase string, w int, n callNote, start, end time.Time, err error)
}

var benchOps = map[string]benchOp{
	"sign": {role: "client", key: "client-sign", purpose: "SIGN", bytes: true,
		prepare: func(_ context.Context, _ *client.Conn, key string, body []byte, _ benchOpts) (benchCall, error) {
			req := &pecetv1.SignRequest{Key: key, Input: &pecetv1.SignRequest_Data{Data: body}}
			return func(ctx context.Context, cc *client.Conn, _ int) error { _, err := cc.Sign.Sign(ctx, req); return err }, nil
		}},
	"sign-digest": {role: "client", key: "client-sign", purpose: "SIGN",
		prepare: func(_ context.Context, _ *client.Conn, key string, body []byte, _ benchOpts) (benchCall, error) {
			sum := sha256.Sum256(body)
			req := &pecetv1.SignRequest{Key: key, Input: &pecetv1.SignRequest_Digest{Digest: sum[:]}}
			return func(ctx context.Context, cc *client.Conn, _ int) error { _, err := cc.Sign.Sign(ctx, req); return err }, nil
		}},
	"verify": {role: "client", key: "client-sign", bytes: true,
		prepare: func(ctx context.Context, cc *client.Conn, key string, body []byte, _ benchOpts) (benchCall, error) {
			resp, err := cc.Sign.Sign(ctx, &pecetv1.SignRequest{Key: key, Input: &pecetv1.SignRequest_Data{Data: body}})
			if err != nil {
				return nil, fmt.Errorf("making the signature to verify: %w", err)
			}
			req := &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: body}}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				r, err := cc.Sign.Verify(ctx, req)
				if err == nil && r.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
					return loadgen.Wrong("verdict %v, want VALID", r.GetVerdict().GetStatus())
				}
				return err
			}, nil
		}},
	// --key names the TSA key only for --baseline (pecetd signs with its
	// configured one): pecet bench --op timestamp --key tsa --baseline.
	"timestamp": {role: "client", key: "tsa", purpose: "TIMESTAMP",
		prepare: func(_ context.Context, _ *client.Conn, _ string, body []byte, _ benchOpts) (benchCall, error) {
			sum := sha256.Sum256(body)
			req := &pecetv1.TimestampRequest{Digest: sum[:], Nonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}, CertReq: true}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				r, err := cc.Timestamp.Timestamp(ctx, req)
				switch {
				case err != nil:
					return err
				case r.GetStatus() == pecetv1.TimestampResponse_REJECTION && r.GetFailureInfo() == tsa.FailSystemFailure.String():
					return &loadgen.Refused{Code: r.GetFailureInfo(), Msg: r.GetStatusText()}
				case r.GetStatus() != pecetv1.TimestampResponse_GRANTED:
					return loadgen.Wrong("time-stamp not granted: %s", r.GetFailureInfo())
				}
				return nil
			}, nil
		}},
	// timestamp-http: RFC 3161 over HTTP (POST /tsa on pecetd's HTTP
	// listener), keep-alive connections, one per caller.
	"timestamp-http": {role: "client", key: "tsa", purpose: "TIMESTAMP",
		prepare: func(_ context.Context, _ *client.Conn, _ string, body []byte, o benchOpts) (benchCall, error) {
			sum := sha256.Sum256(body)
			q, err := tsa.NewRequest(sum[:], crypto.SHA256, true, true)
			if err != nil {
				return nil, err
			}
			der, err := q.Marshal()
			if err != nil {
				return nil, err
			}
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conc, MaxIdleConns: o.conc}}
			return func(ctx context.Context, _ *client.Conn, _ int) error {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.tsaURL, bytes.NewReader(der))
				if err != nil {
					return err
				}
				req.Header.Set("Content-Type", tsa.ContentTypeQuery)
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("POST %s: %s", o.tsaURL, resp.Status)
				}
				r, err := tsa.ParseResponse(out)
				switch {
				case err == nil && r.Status == tsa.StatusRejection && r.Fail == tsa.FailSystemFailure:
					return &loadgen.Refused{Code: r.Fail.String(), Msg: strings.Join(r.StatusText, " ")}
				case err != nil || r.Status != tsa.StatusGranted:
					return loadgen.Wrong("time-stamp not granted: %v", err)
				}
				return nil
			}, nil
		}},
	// encrypt: the key's primary certificate is the recipient; the token
	// takes no part (RSA encryption is public), so there is no baseline.
	"encrypt": {role: "client", key: "gateway-decrypt", bytes: true,
		prepare: func(_ context.Context, _ *client.Conn, key string, body []byte, o benchOpts) (benchCall, error) {
			req := &pecetv1.EncryptRequest{Data: body, RecipientKeys: []string{key},
				Cipher: cipherNames[o.cipher], KeyTransport: transportNames[o.transport]}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				_, err := cc.Envelope.Encrypt(ctx, req)
				return err
			}, nil
		}},
	// decrypt: one message encrypted here, once, to the key's primary
	// certificate (read with GetKey), then decrypted in the loop.
	"decrypt": {role: "gateway", key: "gateway-decrypt", purpose: "DECRYPT", bytes: true,
		prepare: func(ctx context.Context, cc *client.Conn, key string, body []byte, o benchOpts) (benchCall, error) {
			der, err := messageFor(ctx, cc, key, body, o)
			if err != nil {
				return nil, err
			}
			req := &pecetv1.DecryptRequest{Enveloped: der, Key: key}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				r, err := cc.Envelope.Decrypt(ctx, req)
				if err == nil && !bytes.Equal(r.GetData(), body) {
					return loadgen.Wrong("decryption returned %d bytes other than the %d encrypted", len(r.GetData()), len(body))
				}
				return err
			}, nil
		}},
	// encrypt-stream and decrypt-stream: encrypt and decrypt through
	// EncryptStream and DecryptStream (AES-CBC only), the body sent in
	// client.StreamChunk requests; decrypt-stream checks the plaintext.
	"encrypt-stream": {role: "client", key: "gateway-decrypt", bytes: true,
		prepare: func(_ context.Context, _ *client.Conn, key string, body []byte, o benchOpts) (benchCall, error) {
			first := &pecetv1.EncryptStreamRequest{RecipientKeys: []string{key}, Cipher: cipherNames[o.cipher], KeyTransport: transportNames[o.transport]}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				_, err := cc.EncryptStream(ctx, first, bytes.NewReader(body), io.Discard)
				return err
			}, nil
		}},
	"decrypt-stream": {role: "gateway", key: "gateway-decrypt", purpose: "DECRYPT", bytes: true,
		prepare: func(ctx context.Context, cc *client.Conn, key string, body []byte, o benchOpts) (benchCall, error) {
			der, err := messageFor(ctx, cc, key, body, o)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, cc *client.Conn, _ int) error {
				cmp := &compareWriter{want: body}
				_, err := cc.DecryptStream(ctx, key, bytes.NewReader(der), cmp)
				if err == nil && (cmp.bad || len(cmp.want) != 0) {
					return loadgen.Wrong("the stream's plaintext differs from the %d bytes encrypted", len(body))
				}
				return err
			}, nil
		}},
	// noop: the cheapest authorised call (noopCall), to measure what a
	// call costs beside its crypto and audit.
	"noop": {role: "client", prepare: func(context.Context, *client.Conn, string, []byte, benchOpts) (benchCall, error) {
		return noopCall, nil
	}},
	// mix: sign, verify, encrypt, decrypt and timestamp in turn, every
	// answer checked (benchmix.go); for soaks (--rate, --record).
	"mix": {role: "client", role2: "gateway", bytes: true, prepare: prepareMix},
}

func benchOpNames() string {
	names := make([]string, 0, len(benchOps))
	for n := range benchOps {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, "|")
}

func runBench(args []string) int {
	fs, c := newFlags("bench", "bench --op OP [--key ALIAS] [--size 1k] [--cipher C] [--transport T] [--concurrency 16] [--duration 20s] [--connections N] [--rate N] [--record FILE] [--baseline] [--json]", "")
	op := fs.String("op", "sign-digest", "operation: "+benchOpNames())
	key := fs.String("key", "", "key `alias` the operation uses (default: client-sign, for encrypt, decrypt and their -stream forms gateway-decrypt)")
	size := fs.String("size", "1k", "body `size` (bytes, or with k/m suffix; at most 10m)")
	cipher := fs.String("cipher", "aes256-cbc", "content cipher for encrypt and decrypt: aes256-cbc|aes128-cbc|aes256-gcm|aes128-gcm (the -stream forms: CBC only)")
	transport := fs.String("transport", "rsa-oaep", "key transport for encrypt and decrypt: rsa-oaep|rsa-oaep-sha1|rsa-pkcs1")
	tsaURL := fs.String("tsa-url", "", "`URL` for timestamp-http: pecetd's POST /tsa or any RFC 3161 HTTP time-stamping service (scripts/perf sigstore) (default: the dev folder's HTTP address, else http://127.0.0.1:7080/tsa)")
	conc := fs.Int("concurrency", 16, "concurrent callers")
	dur := fs.Duration("duration", 20*time.Second, "measured `duration`")
	warm := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up `duration`")
	conns := fs.Int("connections", 1, "gRPC connections the callers share round-robin")
	baseline := fs.Bool("baseline", false, "also measure the raw token rate of the same key with direct PKCS#11 (runs pecetd bench-token, beside pecet or on PATH; needs the token: dev folder or --config; at --concurrency callers, for batch ops at the items' parallelism in pecetd) and the no-op rate over the same connections, and print the ratios to the raw rate and to the ceiling 1/(1/raw + 1/noop)")
	cfgPath := fs.String("config", "", "pecetd config `file` for --baseline (default: the dev folder's pecet.yaml)")
	rate := fs.Float64("rate", 0, "open loop: start this many calls per `second` whatever the answers take, on at most --concurrency at once (0: closed loop, each caller back to back)")
	batchN := fs.Int("batch", 0, "items per call of sign-digests and timestamp-batch (1 to 1000, default 64; their ops count items) and of seal (document digests, 1 to 100,000, default 1,000; items/s = ops/s × batch); other ops refuse it")
	recordPath := fs.String("record", "", "write every call (operation, audit input_sha256, start, end, gRPC code, wrong answer) to `file` as JSON lines")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	bo, ok := benchOps[*op]
	if !ok {
		return usageErr(fs, "--op %q: use %s", *op, benchOpNames())
	}
	n, err := parseSize(*size)
	if err != nil {
		return usageErr(fs, "--size: %v", err)
	}
	if _, ok := cipherNames[*cipher]; !ok {
		return usageErr(fs, "--cipher %q: use aes256-cbc, aes128-cbc, aes256-gcm or aes128-gcm", *cipher)
	}
	if _, ok := transportNames[*transport]; !ok {
		return usageErr(fs, "--transport %q: use rsa-oaep, rsa-oaep-sha1 or rsa-pkcs1", *transport)
	}
	if *key == "" {
		*key = bo.key
	}
	if *baseline && bo.purpose == "" {
		return usageErr(fs, "--baseline: %s has no token operation to compare with", *op)
	}
	if *batchN != 0 && !bo.batch && *op != "seal" {
		return usageErr(fs, "--batch: %s takes no batch (only sign-digests, timestamp-batch and seal do)", *op)
	}
	switch {
	case *batchN == 0 && *op == "seal":
		*batchN = 1000
	case *batchN == 0:
		*batchN = 64
	case *batchN < 0, bo.batch && *batchN > maxBatch:
		return usageErr(fs, "--batch %d: between 1 and %d", *batchN, maxBatch)
	}
	if *conc < 1 || *conns < 1 || *dur <= 0 || *rate < 0 {
		return usageErr(fs, "--concurrency, --connections and --duration must be positive, --rate not negative")
	}
	var rec *recorder
	if *recordPath != "" {
		f, err := os.Create(*recordPath)
		if err != nil {
			return fail("bench --record", err)
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 1<<16)
		defer bw.Flush()
		rec = newRecorder(bw)
	}
	if c.opts.Role == "" {
		c.opts.Role = bo.role
	}
	body := make([]byte, n)
	_, _ = rand.Read(body)
	ccs := make([]*client.Conn, *conns)
	for i := range ccs {
		cc, err := client.Dial(c.opts)
		if err != nil {
			return fail("bench", err)
		}
		defer cc.Close()
		ccs[i] = cc
	}
	var second []*client.Conn
	if bo.role2 != "" {
		// The dev folder's certificate of that role; explicit --cert
		// files must then carry both roles.
		o2 := c.opts
		if o2.Cert == "" {
			o2.Role = bo.role2
		}
		for range *conns {
			cc, err := client.Dial(o2)
			if err != nil {
				return fail("bench", err)
			}
			defer cc.Close()
			second = append(second, cc)
		}
	}
	setupCtx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if *tsaURL == "" {
		*tsaURL = devTSAURL(c.opts.DevDir)
	}
	notes := make([]callNote, *conc)
	bopts := benchOpts{cipher: *cipher, transport: *transport, tsaURL: *tsaURL, conc: *conc, batch: *batchN, second: second, notes: notes, record: rec.add}
	raw0, err := bo.prepare(setupCtx, ccs[0], *key, body, bopts)
	if err != nil {
		return fail("bench", err)
	}
	// Every call, setup and load, goes to --record with what it noted.
	call := func(ctx context.Context, phase string, w int) error {
		notes[w] = callNote{Op: *op}
		start := time.Now()
		err := raw0(ctx, ccs[w%len(ccs)], w)
		rec.add(phase, w, notes[w], start, time.Now(), err)
		return err
	}
	// One call first: a wrong key or role fails here, clearly.
	if err := call(setupCtx, "setup", 0); err != nil {
		return fail("bench", err)
	}
	// The raw rate is measured for half the duration before the load and
	// half after, on a token opened now: the ratio then compares phases
	// that bracket the same minutes, and the two halves' spread shows how
	// much the machine's other load moved meanwhile.
	var raw func(time.Duration) (float64, error)
	var rawBefore, noopRate float64
	// The raw rate is measured at the parallelism the token work really
	// has: the callers' for single calls, the items' for batches.
	rawConc := *conc
	if *baseline {
		// The no-op rate first, on the same connections and callers: what
		// pecetd serves when a call does no crypto and writes no audit.
		if noopRate, err = noopPhase(ccs, *conc, *dur/2, *warm, c.timeout); err != nil {
			return fail("bench --baseline", err)
		}
		var closeRaw func()
		if bo.batch {
			if rawConc, err = batchBaselineConcurrency(c.opts.DevDir, *cfgPath, *conc, *batchN); err != nil {
				return fail("bench --baseline", err)
			}
		}
		raw, closeRaw, err = rawBaseline(c.opts.DevDir, *cfgPath, *key, bo.purpose, rawConc)
		if err == nil {
			defer closeRaw()
			rawBefore, err = raw(*dur / 2)
		}
		if err != nil {
			return fail("bench --baseline", err)
		}
	}
	progress := func(el time.Duration, ops, errs int64) {
		if bo.batch {
			ops *= int64(*batchN) // items, as the report counts them
		}
		if !c.json {
			fmt.Fprintf(os.Stderr, "\r%5.1fs  %8d ops  %8.0f/s  errors %d   ", el.Seconds(), ops, float64(ops)/el.Seconds(), errs)
		}
	}
	res := loadgen.Run(context.Background(), loadgen.Config{Concurrency: *conc, Duration: *dur, Warmup: *warm, Rate: *rate, Progress: progress},
		func(ctx context.Context, w int) error {
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			return call(cctx, "", w)
		})
	if !c.json {
		fmt.Fprintln(os.Stderr)
	}
	out := map[string]any{
		"op": *op, "key": *key, "size": n, "concurrency": *conc, "connections": *conns,
		"duration_s": res.Elapsed.Seconds(), "ops": res.Ops, "ops_per_s": res.Rate(),
		"latency_ms": map[string]float64{"p50": ms(res.P50), "p90": ms(res.P90), "p99": ms(res.P99), "max": ms(res.Max)},
		"errors":     res.Errors, "errors_by_second": res.ErrorsBySecond, "wrong": res.Wrong,
	}
	if *rate > 0 {
		out["rate"], out["skipped"] = *rate, res.Skipped
	}
	if bo.bytes {
		out["mb_per_s"] = res.Rate() * float64(n) / 1e6
	}
	if *op == "seal" {
		out["batch"], out["items_per_s"] = *batchN, res.Rate()*float64(*batchN)
	}
	if *baseline {
		rawAfter, err := raw(*dur / 2)
		if err != nil {
			return fail("bench --baseline", err)
		}
		addBaseline(out, res.Rate(), rawBefore, rawAfter, noopRate)
		out["baseline_concurrency"] = rawConc
	}
	if bo.batch {
		batchReport(out, res, *batchN, *baseline)
	}
	if c.json {
		printJSON(out)
	} else {
		fmt.Printf("%s  key %s  size %d  concurrency %d  connections %d  %.1fs\n", *op, *key, n, *conc, *conns, res.Elapsed.Seconds())
		fmt.Printf("ops/s     %.1f", out["ops_per_s"])
		if bo.batch {
			fmt.Printf("   (items; %.1f calls/s of %d)", out["calls_per_s"], *batchN)
		}
		if bo.bytes {
			fmt.Printf("   MB/s %.2f", out["mb_per_s"])
		}
		if *op == "seal" {
			fmt.Printf("   items/s %.0f (batch %d)", out["items_per_s"], *batchN)
		}
		fmt.Printf("\nlatency   p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms\n", ms(res.P50), ms(res.P90), ms(res.P99), ms(res.Max))
		if *rate > 0 {
			fmt.Printf("rate      %.1f/s asked, %d starts skipped (every caller busy)\n", *rate, res.Skipped)
		}
		if len(res.Errors) == 0 {
			fmt.Println("errors    none")
		} else {
			fmt.Printf("errors    %v\n", res.Errors)
			fmt.Printf("          by second of the run: %s\n", bySecond(res.ErrorsBySecond))
		}
		fmt.Printf("wrong     %d\n", res.Wrong)
		if *baseline {
			fmt.Printf("baseline  %.1f/s raw token rate, same key, concurrency %d, direct PKCS#11 (%.1f before, %.1f after the load)\n",
				out["baseline_ops_per_s"], rawConc, out["baseline_before_ops_per_s"], out["baseline_after_ops_per_s"])
			if bo.batch {
				fmt.Printf("          (concurrency %d: the items' parallelism in pecetd, %d calls of %d items on a pool of token sessions; docs/performance.md \"Batch calls\")\n", rawConc, *conc, *batchN)
			}
			fmt.Printf("noop      %.1f/s no-op calls (ListPolicies), same connections, concurrency %d\n", out["noop_ops_per_s"], *conc)
			fmt.Printf("ceiling   %.1f/s = 1/(1/raw + 1/noop)\n", out["ceiling_ops_per_s"])
			fmt.Printf("ratio     %.3f to raw, %.3f to the ceiling\n", out["ratio"], out["ceiling_ratio"])
		}
	}
	if res.ErrorCount() > 0 || res.Wrong > 0 {
		return exitService
	}
	return exitOK
}

// noopCall is PolicyService.ListPolicies: the cheapest call that goes
// through everything a Sign goes through before its handler (mTLS, the
// interceptors, authorisation, the rate limit) and then does no crypto,
// touches no token and writes no audit: its answer is the policies pecetd
// holds in memory. The health Check would skip the authorisation, which
// every real call pays (docs/performance.md, "Method").
func noopCall(ctx context.Context, cc *client.Conn, _ int) error {
	_, err := cc.Policy.ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
	return err
}

// noopPhase measures the no-op rate with conc callers on ccs for d after
// warm, as the load is measured; any failed call fails it, since a rate of
// refusals is no ceiling.
func noopPhase(ccs []*client.Conn, conc int, d, warm, timeout time.Duration) (float64, error) {
	res := loadgen.Run(context.Background(), loadgen.Config{Concurrency: conc, Duration: d, Warmup: warm},
		func(ctx context.Context, w int) error {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return noopCall(cctx, ccs[w%len(ccs)], w)
		})
	if n := res.ErrorCount(); n > 0 {
		return 0, fmt.Errorf("%w: %d of the no-op calls failed: %v", errNoopFailed, n, res.Errors)
	}
	if res.Rate() <= 0 {
		return 0, fmt.Errorf("%w: no call completed in %v", errNoopFailed, d)
	}
	return res.Rate(), nil
}

var errNoopFailed = errors.New("measuring the no-op rate")

// addBaseline adds to a --baseline report the raw token rate (the mean of
// its halves before and after the load), the no-op rate, their combined
// ceiling and pecet's rate as a ratio to each. A call costs at least a
// token operation plus a no-op call, one after the other, so the best rate
// is 1/(1/raw + 1/noop) (docs/performance.md, "Method").
func addBaseline(out map[string]any, rate, before, after, noop float64) {
	mean := (before + after) / 2
	out["baseline_ops_per_s"] = mean
	out["baseline_before_ops_per_s"] = before
	out["baseline_after_ops_per_s"] = after
	out["noop_ops_per_s"] = noop
	ceil := ceiling(mean, noop)
	out["ceiling_ops_per_s"] = ceil
	// Zero, never NaN or Inf, for what was not measured: JSON has neither.
	out["baseline_spread"], out["ratio"], out["ceiling_ratio"] = 0.0, 0.0, 0.0
	if mean > 0 {
		out["baseline_spread"] = math.Abs(before-after) / mean
		out["ratio"] = rate / mean
	}
	if ceil > 0 {
		out["ceiling_ratio"] = rate / ceil
	}
}

// ceiling is the rate of two stages in series, each at its own rate: the
// harmonic sum 1/(1/raw + 1/noop); zero when either was not measured.
func ceiling(raw, noop float64) float64 {
	if raw <= 0 || noop <= 0 {
		return 0
	}
	return 1 / (1/raw + 1/noop)
}

// bySecond lists error counts as "SECONDs:N" in time order.
func bySecond(m map[int]int64) string {
	secs := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(secs))
	for i, s := range secs {
		parts[i] = fmt.Sprintf("%ds:%d", s, m[s])
	}
	return strings.Join(parts, " ")
}

func isWrong(err error) bool { return errors.Is(err, loadgen.ErrWrong) }

// devTSAURL is POST /tsa on the HTTP address pecetd --dev wrote to the dev
// folder (PECET_DEV_DIR, else ./.pecet-dev), else on the default address.
func devTSAURL(dir string) string {
	if dir == "" {
		dir = os.Getenv("PECET_DEV_DIR")
	}
	if dir == "" {
		dir = client.DefaultDevDir
	}
	var ep struct {
		HTTP string `json:"http"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "pecetd.addr")); err == nil && json.Unmarshal(b, &ep) == nil && ep.HTTP != "" {
		return "http://" + ep.HTTP + "/tsa"
	}
	return "http://" + config.DefaultHTTPAddr + "/tsa"
}

// maxBenchSize keeps a body and its envelope within pecetd's default
// message limit (24 MiB) with room for the CMS framing.
const maxBenchSize = 10 << 20

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(strings.ToLower(s), "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(strings.ToLower(s), "m"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxBenchSize/mult {
		return 0, fmt.Errorf("%q is not a size between 1 and 10m", s)
	}
	return n * mult, nil
}

// rawBaseline starts `pecetd bench-token` (the pecetd next to this pecet,
// else the one on PATH) on the token pecetd uses (its config, or the dev
// folder's) and returns a measurement of the raw rate of the same key with
// direct PKCS#11 calls on sessions of its own: the physical limit pecetd is
// compared to. The token is opened in that process, not here, so that the
// pecet client links no PKCS#11 (docs/architecture.md).
func rawBaseline(devDir, cfgPath, alias, purpose string, conc int) (func(time.Duration) (float64, error), func(), error) {
	bin, err := pecetdBinary()
	if err != nil {
		return nil, nil, err
	}
	args := []string{"bench-token", "--key", alias, "--purpose", purpose, "--concurrency", strconv.Itoa(conc)}
	if cfgPath != "" {
		args = append(args, "--config", cfgPath)
	} else {
		dir := devDir
		if dir == "" {
			dir = os.Getenv("PECET_DEV_DIR")
		}
		if dir == "" {
			dir = client.DefaultDevDir
		}
		args = append(args, "--dev-dir", dir)
	}
	cmd := exec.Command(bin, args...) //nolint:gosec // bin is pecetd beside pecet or on PATH; the arguments are flags
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	lines := bufio.NewScanner(stdout)
	done := false
	wait := func() {
		if !done {
			done = true
			_ = stdin.Close()
			_ = cmd.Wait()
		}
	}
	measure := func(d time.Duration) (float64, error) {
		if _, err := fmt.Fprintln(stdin, d); err == nil && lines.Scan() {
			return strconv.ParseFloat(lines.Text(), 64)
		}
		wait()
		return 0, fmt.Errorf("%w: %s", errBaseline, strings.TrimSpace(stderr.String()))
	}
	return measure, wait, nil
}

// errBaseline: pecetd bench-token failed; its message follows.
var errBaseline = errors.New("pecetd bench-token failed")

// pecetdBinary is the pecetd installed beside this pecet, else the one on PATH.
func pecetdBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "pecetd")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("pecetd")
	if err != nil {
		return "", fmt.Errorf("--baseline runs pecetd bench-token, and no pecetd is beside pecet or on PATH: %w", err)
	}
	return p, nil
}

// compareWriter checks what is written against want, holding nothing.
type compareWriter struct {
	want []byte
	bad  bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if len(p) > len(c.want) || !bytes.Equal(p, c.want[:len(p)]) {
		c.bad = true
		return len(p), nil
	}
	c.want = c.want[len(p):]
	return len(p), nil
}

// messageFor encrypts body here, once, to the primary certificate of key
// (read with GetKey): the message the decrypt operations open in the loop.
func messageFor(ctx context.Context, cc *client.Conn, key string, body []byte, o benchOpts) ([]byte, error) {
	cert, err := primaryCert(ctx, cc, key)
	if err != nil {
		return nil, err
	}
	der, err := envelope.Encrypt(body, []*x509.Certificate{cert}, envelope.Options{
		Cipher: envelope.Cipher(o.cipher), KeyTransport: envelope.KeyTransport(o.transport)})
	if err != nil {
		return nil, fmt.Errorf("encrypting the message to decrypt: %w", err)
	}
	return der, nil
}
