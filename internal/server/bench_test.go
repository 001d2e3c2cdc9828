package server

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/keystore"
)

// BenchmarkSign measures CMS signatures per second through the service
// (gRPC with mTLS over bufconn, authorisation, CMS encoding) over a client
// digest, next to the raw token rate of the same key on the same token
// measured right after it (keystore's KeySigner.Baseline: C_Sign on
// dedicated sessions, nothing else). The ratio is what performance goals are
// quoted in; no figure is asserted. Every signature writes two audit lines;
// "fsync" runs with the production policy (audit.sync: event, one shared
// fsync per operation), "nosync" with page-cache writes only.
func BenchmarkSign(b *testing.B) {
	for _, pol := range []audit.SyncPolicy{audit.SyncNone, audit.SyncEvent} {
		for _, conc := range []int{1, 16} {
			name := map[int]string{1: "c1", 16: "c16"}[conc] + map[audit.SyncPolicy]string{audit.SyncNone: "-nosync", audit.SyncEvent: "-fsync"}[pol]
			b.Run(name, func(b *testing.B) { benchSign(b, conc, pol) })
		}
	}
}

func benchSign(b *testing.B, conc int, pol audit.SyncPolicy) {
	f := newFixtureOpts(b, fixtureOpts{auditSync: pol})
	sc := pecetv1.NewSignServiceClient(f.dial(b, "client"))
	sum := sha256.Sum256([]byte("pecet benchmark"))
	req := &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Digest{Digest: sum[:]}}
	ctx := context.Background()
	if _, err := sc.Sign(ctx, req); err != nil { // warm the connection and the key cache
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := sc.Sign(ctx, req); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	rate := float64(b.N) / elapsed.Seconds()
	k, err := f.store.Signer(ctx, "client-sign", 0, keystore.PurposeSign)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := k.Baseline(ctx, conc, max(elapsed, 200*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate, "sig/s")
	b.ReportMetric(raw, "raw-sig/s")
	b.ReportMetric(rate/raw, "ratio")
}
