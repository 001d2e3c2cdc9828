package server

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
)

// manualClock is a clock the test moves by hand, safe to read from the
// server's goroutines.
type manualClock struct{ ns atomic.Int64 }

func (c *manualClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// rateFixture serves with limits.rate_per_client 10 and burst 10 on a clock
// that moves only when the test moves it.
func rateFixture(t *testing.T) (*fixture, *manualClock) {
	clock := &manualClock{}
	clock.ns.Store(time.Unix(1e9, 0).UnixNano())
	f := newFixtureOpts(t, fixtureOpts{tcp: true, deps: func(d *Deps) { d.Limiter = ratelimit.NewBounded(10, 10, 100, clock.now) }})
	return f, clock
}

// phaseCount counts the audit lines of one RPC by phase.
func phaseCount(t *testing.T, f *fixture, rpc string) map[string]int {
	t.Helper()
	n := map[string]int{}
	if fi, err := os.Stat(f.auditFile); err == nil && fi.Size() == 0 {
		return n // nothing written yet
	}
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC == rpc {
			n[e.Phase]++
		}
	}
	return n
}

func wantRefusal(t *testing.T, what string, err error, code codes.Code, msg ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
	for _, m := range msg {
		if !strings.Contains(status.Convert(err).Message(), m) {
			t.Fatalf("%s: message %q does not say %q", what, status.Convert(err).Message(), m)
		}
	}
}

// TestBatchRateLimit: a batch call costs one token of
// limits.rate_per_client per item (docs/security.md "Batch calls and the
// rate limit"), for each unary batch RPC. With rate 10 and burst 10: a
// batch of 50 is refused with InvalidArgument naming limits.burst and its
// size, two batches of 5 fit, the next item does not (ResourceExhausted,
// as a single call over the rate), and after 300 ms three more fit. A
// refused batch signs, decrypts or time-stamps nothing and, as any call
// refused by the rate limit, writes no audit line at all.
func TestBatchRateLimit(t *testing.T) {
	f, clock := rateFixture(t)
	ctx := ctxT(t)
	client, gateway := f.dial(t, "client"), f.dial(t, "gateway")
	k, err := f.store.GetKey(ctx, "gateway-decrypt")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := envelope.Encrypt([]byte("filing"), []*x509.Certificate{k.Versions[0].Certificate()}, envelope.Options{})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("filing"))
	repeat := repeatDigest
	for _, tt := range []struct {
		name string
		rpc  string
		// call makes a batch of n items and returns its item codes.
		call func(ctx context.Context, n int) ([]uint32, error)
	}{
		{"SignDigests", pecetv1.SignService_SignDigests_FullMethodName, func(ctx context.Context, n int) ([]uint32, error) {
			r, err := pecetv1.NewSignServiceClient(client).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: repeat(n, digest[:]), Raw: true})
			var out []uint32
			for _, x := range r.GetResults() {
				out = append(out, x.GetStatus().GetCode())
			}
			return out, err
		}},
		{"TimestampBatch", pecetv1.TimestampService_TimestampBatch_FullMethodName, func(ctx context.Context, n int) ([]uint32, error) {
			req := &pecetv1.TimestampBatchRequest{}
			for range n {
				req.Requests = append(req.Requests, &pecetv1.TimestampRequest{Digest: digest[:]})
			}
			r, err := pecetv1.NewTimestampServiceClient(gateway).TimestampBatch(ctx, req)
			var out []uint32
			for _, x := range r.GetResults() {
				out = append(out, x.GetStatus().GetCode())
			}
			return out, err
		}},
		{"DecryptBatch", pecetv1.EnvelopeService_DecryptBatch_FullMethodName, func(ctx context.Context, n int) ([]uint32, error) {
			r, err := pecetv1.NewEnvelopeServiceClient(gateway).DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: repeat(n, sealed)})
			var out []uint32
			for _, x := range r.GetResults() {
				out = append(out, x.GetStatus().GetCode())
			}
			return out, err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock.add(2 * time.Second) // the identity's bucket is full again
			steps := []struct {
				wait time.Duration
				n    int
				code codes.Code
				msg  []string
			}{
				{0, 50, codes.InvalidArgument, []string{"50 items", "limits.burst", "10"}},
				{0, 5, codes.OK, nil},
				{0, 5, codes.OK, nil},
				{0, 1, codes.ResourceExhausted, []string{"rate limit"}},
				{300 * time.Millisecond, 4, codes.ResourceExhausted, []string{"rate limit"}},
				{0, 3, codes.OK, nil},
			}
			done := 0
			for i, s := range steps {
				clock.add(s.wait)
				items, err := tt.call(ctx, s.n)
				if s.code != codes.OK {
					wantRefusal(t, fmt.Sprintf("step %d", i), err, s.code, s.msg...)
					if len(items) != 0 {
						t.Fatalf("step %d: a refused batch answered %d items", i, len(items))
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %d items: %v", i, s.n, err)
				}
				for j, c := range items {
					if c != 0 {
						t.Fatalf("step %d: item %d: code %d", i, j, c)
					}
				}
				done += s.n
			}
			// Only the three batches that ran are in the log.
			n := phaseCount(t, f, tt.rpc)
			if n[audit.PhaseBegin] != 3 || n[audit.PhaseEnd] != 3 || n[audit.PhaseItem] != done || n[audit.PhaseDenied] != 0 {
				t.Fatalf("audit lines %v, want 3 begin, 3 end, %d item", n, done)
			}
		})
	}
}

// TestSignDigestsStreamRateLimit: a SignDigestsStream pays for each
// request's digests when it reads the request, before any token work;
// opening the stream takes one token, which counts as its first request's
// first item, so a stream costs what the same digests in SignDigests cost.
// A request that does not fit the tokens left ends the stream with
// ResourceExhausted after the responses of the requests before it; its
// digests are not signed and get no item line. A first request refused
// this way (or one above the burst) writes no audit line at all.
func TestSignDigestsStreamRateLimit(t *testing.T) {
	f, clock := rateFixture(t)
	ctx := ctxT(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	digest := sha256.Sum256([]byte("filing"))
	rpc := pecetv1.SignService_SignDigestsStream_FullMethodName
	type step struct {
		n    int
		code codes.Code
		msg  []string
	}
	for _, tt := range []struct {
		name  string
		wait  time.Duration // before the stream opens
		steps []step        // requests in order; the stream ends at the first refusal
		begun bool          // the stream has a begin line
		items int           // its item lines
	}{
		{"the second request exceeds the bucket", 2 * time.Second,
			[]step{{8, codes.OK, nil}, {5, codes.ResourceExhausted, []string{"rate limit"}}}, true, 8},
		{"a first request above the burst", 2 * time.Second,
			[]step{{50, codes.InvalidArgument, []string{"50 items", "limits.burst", "10"}}}, false, 0},
		{"five twice fit, one more does not", 2 * time.Second,
			[]step{{5, codes.OK, nil}, {5, codes.OK, nil}, {1, codes.ResourceExhausted, []string{"rate limit"}}}, true, 10},
		{"empty requests cost a token each", 2 * time.Second,
			[]step{{5, codes.OK, nil}, {0, codes.OK, nil}, {0, codes.OK, nil}, {0, codes.OK, nil}, {0, codes.OK, nil}, {0, codes.OK, nil},
				{1, codes.ResourceExhausted, []string{"rate limit"}}}, true, 5},
		{"a first request over the tokens left", 500 * time.Millisecond,
			[]step{{8, codes.ResourceExhausted, []string{"rate limit"}}}, false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock.add(tt.wait)
			before := phaseCount(t, f, rpc)
			st, err := sc.SignDigestsStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			batch := ""
			for i, s := range tt.steps {
				req := &pecetv1.SignDigestsRequest{Digests: repeatDigest(s.n, digest[:]), Raw: true}
				if i == 0 {
					req.Key = "client-sign"
				}
				_ = st.Send(req) // a refusal may have ended the stream already: Recv says why
				resp, err := st.Recv()
				if s.code != codes.OK {
					wantRefusal(t, fmt.Sprintf("request %d", i+1), err, s.code, s.msg...)
					break
				}
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				batch = resp.GetBatch()
				for j, r := range resp.GetResults() {
					if r.GetStatus().GetCode() != 0 || len(r.GetSignature()) == 0 {
						t.Fatalf("request %d item %d: %v", i+1, j, r.GetStatus())
					}
				}
			}
			after := phaseCount(t, f, rpc)
			begun := after[audit.PhaseBegin] - before[audit.PhaseBegin]
			items := after[audit.PhaseItem] - before[audit.PhaseItem]
			if begun != map[bool]int{true: 1}[tt.begun] || items != tt.items {
				t.Fatalf("%d begin lines and %d item lines, want begun %v and %d items", begun, items, tt.begun, tt.items)
			}
			if tt.begun {
				var end *audit.Event
				for _, e := range auditEvents(t, f.auditFile) {
					if e.Phase == audit.PhaseEnd && e.Call == batch {
						end = &e
					}
				}
				if end == nil || end.Code != codes.ResourceExhausted.String() {
					t.Fatalf("end line %+v, want the stream's ResourceExhausted", end)
				}
			}
		})
	}
}

func repeatDigest(n int, d []byte) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = d
	}
	return out
}
