package audit

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// BenchmarkWrite measures one audit event per policy, single writer and 16
// concurrent writers (group commit), next to the raw signing rate of an EC
// P-256 key on a SoftHSM token measured in the same run: "per-sig" is the
// audit cost of one event as a fraction of one raw signature. A signature
// through the service writes two events (begin and end).
func BenchmarkWrite(b *testing.B) {
	s := softhsm.NewToken(b)
	ctx := context.Background()
	if _, err := s.CreateKey(ctx, "bench", keystore.PurposeSign, keystore.ECP256); err != nil {
		b.Fatal(err)
	}
	ps, err := s.ProofSigner(ctx, "bench", 1)
	if err != nil {
		b.Fatal(err)
	}
	ks := ps.(*keystore.KeySigner)
	for _, pol := range []SyncPolicy{SyncEvent, SyncNone} {
		for _, conc := range []int{1, 16} {
			b.Run(string(pol)+map[int]string{1: "/c1", 16: "/c16"}[conc], func(b *testing.B) {
				l, err := Open(Options{File: filepath.Join(b.TempDir(), "audit.log"), Sync: pol})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				ev := Event{Phase: PhaseBegin, Caller: "client", Role: "client", RPC: pecetv1.SignService_Sign_FullMethodName, Key: "client-sign", InputSHA256: InputHash([]byte("x"))}
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				per := (b.N + conc - 1) / conc
				for range conc {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range per {
							if err := l.Write(ev); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				rate := float64(per*conc) / el.Seconds()
				raw, err := ks.Baseline(ctx, conc, max(el, 200*time.Millisecond))
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(rate, "events/s")
				b.ReportMetric(raw, "raw-sig/s")
				b.ReportMetric(raw/rate, "per-sig")
			})
		}
	}
}
