package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/keystore"
)

// The benchmarks measure operations per second through the service (gRPC
// with mTLS over bufconn, authorisation, interceptors, CMS) next to the raw
// token rate of the same key on the same token measured right after, at the
// same concurrency (keystore's Baseline: the bare PKCS#11 calls on sessions
// of their own, nothing else). The ratio is what performance goals are
// quoted in (docs/performance.md); no figure is asserted.

var benchConcs = []int{1, 16}

// BenchmarkSign signs over a client digest with an RSA-2048 and an ECDSA
// P-256 key. Every signature writes two audit lines; "fsync" runs with the
// production policy (audit.sync: event, one shared fsync per operation),
// "begin" with the write-ahead policy (the begin line's fsync runs during
// the signature), "nosync" with page-cache writes only.
func BenchmarkSign(b *testing.B) {
	for _, pol := range []audit.SyncPolicy{audit.SyncNone, audit.SyncEvent, audit.SyncBegin} {
		polName := map[audit.SyncPolicy]string{audit.SyncNone: "nosync", audit.SyncEvent: "fsync", audit.SyncBegin: "begin"}[pol]
		f := newFixtureOpts(b, fixtureOpts{auditSync: pol})
		addSignKey(b, f, "rsa-sign", keystore.RSA2048)
		sc := pecetv1.NewSignServiceClient(f.dial(b, "wide-client"))
		for _, k := range []struct{ name, alias string }{{"rsa2048", "rsa-sign"}, {"p256", "client-sign"}} {
			for _, conc := range benchConcs {
				b.Run(fmt.Sprintf("%s/c%d-%s", k.name, conc, polName), func(b *testing.B) {
					sum := sha256.Sum256([]byte("pecet benchmark"))
					req := &pecetv1.SignRequest{Key: k.alias, Input: &pecetv1.SignRequest_Digest{Digest: sum[:]}}
					elapsed := runConc(b, conc, func(ctx context.Context) error { _, err := sc.Sign(ctx, req); return err })
					s, err := f.store.Signer(context.Background(), k.alias, 0, keystore.PurposeSign)
					if err != nil {
						b.Fatal(err)
					}
					reportRatio(b, elapsed, "sig/s", func(d time.Duration) (float64, error) { return s.Baseline(context.Background(), conc, d) })
				})
			}
		}
	}
}

// BenchmarkDecrypt decrypts a 1 KB CMS EnvelopedData (AES-256-CBC,
// RSA-OAEP-SHA256 as pecet writes by default) with the RSA-2048
// gateway-decrypt key, next to the raw token RSA rate (CKM_RSA_X_509): one
// private-key operation is what one decryption needs of the token.
//
// The 10 MB case (one caller) is for the profile of the large-body path
// (gRPC buffers, CMS parsing, AES); its ratio is far below 1 by nature.
func BenchmarkDecrypt(b *testing.B) {
	f := newFixtureOpts(b, fixtureOpts{deps: func(d *Deps) { d.MaxMessageBytes = 24 << 20 }})
	ec := pecetv1.NewEnvelopeServiceClient(f.dial(b, "gateway"))
	ctx := context.Background()
	d, err := f.store.Decrypter(ctx, "gateway-decrypt", 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		size  int
		concs []int
	}{{"1KB", 1 << 10, benchConcs}, {"10MB", 10 << 20, []int{1}}} {
		data := make([]byte, c.size)
		_, _ = rand.Read(data)
		der, err := envelope.Encrypt(data, []*x509.Certificate{d.Version().Certificate()}, envelope.Options{})
		if err != nil {
			b.Fatal(err)
		}
		req := &pecetv1.DecryptRequest{Enveloped: der, Key: "gateway-decrypt"}
		for _, conc := range c.concs {
			b.Run(fmt.Sprintf("%s/c%d", c.name, conc), func(b *testing.B) {
				b.SetBytes(int64(c.size))
				elapsed := runConc(b, conc, func(ctx context.Context) error {
					_, err := ec.Decrypt(ctx, req, grpc.MaxCallRecvMsgSize(24<<20), grpc.MaxCallSendMsgSize(24<<20))
					return err
				})
				reportRatio(b, elapsed, "msg/s", func(dur time.Duration) (float64, error) { return d.Baseline(ctx, conc, dur) })
			})
		}
	}
}

// addSignKey makes a SIGN key with a certificate from the fixture's CA.
func addSignKey(b *testing.B, f *fixture, alias string, a keystore.Algorithm) {
	b.Helper()
	ctx := context.Background()
	v, err := f.store.CreateKey(ctx, alias, keystore.PurposeSign, a)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := f.ca.Issue(alias, devca.CMSSign, v.Public, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(ctx, alias, v.Version, []*x509.Certificate{cert, f.ca.Cert}); err != nil {
		b.Fatal(err)
	}
}

// runConc makes b.N calls from conc goroutines (after one unmeasured call
// that warms the connection and the key cache) and returns the time taken.
func runConc(b *testing.B, conc int, call func(context.Context) error) time.Duration {
	b.Helper()
	ctx := context.Background()
	if err := call(ctx); err != nil {
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
				if err := call(ctx); err != nil {
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
	return elapsed
}

// reportRatio reports the service rate, the raw rate measured now for as
// long as the service ran (at least 200 ms), and their ratio.
func reportRatio(b *testing.B, elapsed time.Duration, unit string, baseline func(time.Duration) (float64, error)) {
	b.Helper()
	rate := float64(b.N) / elapsed.Seconds()
	raw, err := baseline(max(elapsed, 200*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate, unit)
	b.ReportMetric(raw, "raw-"+unit)
	b.ReportMetric(rate/raw, "ratio")
}
