package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/tsa"
)

// BenchmarkTimestamp measures time-stamp tokens per second through HTTP
// (POST /tsa on a real loopback server) and through gRPC (mTLS over
// bufconn), next to the raw token-signing rate of the TSA key measured
// right after (KeySigner.Baseline). The ratio is the figure to quote; none
// is asserted.
func BenchmarkTimestamp(b *testing.B) {
	for _, transport := range []string{"http", "grpc"} {
		for _, conc := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/c%d", transport, conc), func(b *testing.B) { benchTimestamp(b, transport, conc) })
		}
	}
}

func benchTimestamp(b *testing.B, transport string, conc int) {
	f := newFixtureTB(b)
	ctx := context.Background()
	sum := sha256.Sum256([]byte("pecet benchmark"))
	var call func() error
	switch transport {
	case "http":
		hs := httptest.NewServer(f.srv.HTTP())
		b.Cleanup(hs.Close)
		req, err := tsa.NewRequest(sum[:], crypto.SHA256, true, true)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := req.Marshal()
		cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
		call = func() error {
			resp, err := cl.Post(hs.URL+"/tsa", tsa.ContentTypeQuery, bytes.NewReader(body))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if r, err := tsa.ParseResponse(out); err != nil || r.Status != tsa.StatusGranted {
				return fmt.Errorf("not granted: %w", err)
			}
			return nil
		}
	default:
		tc := pecetv1.NewTimestampServiceClient(f.dial(b, "client"))
		req := &pecetv1.TimestampRequest{Digest: sum[:], Nonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}, CertReq: true}
		call = func() error {
			resp, err := tc.Timestamp(ctx, req)
			if err == nil && resp.GetStatus() != pecetv1.TimestampResponse_GRANTED {
				err = fmt.Errorf("not granted: %s", resp.GetStatusText())
			}
			return err
		}
	}
	elapsed := runConc(b, conc, func(context.Context) error { return call() })
	k, err := f.store.Signer(ctx, "tsa", 0, keystore.PurposeTimestamp)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := k.Baseline(ctx, conc, max(elapsed, 200*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "tokens/s")
	b.ReportMetric(raw, "raw-sig/s")
	b.ReportMetric(rate/raw, "ratio")
}
