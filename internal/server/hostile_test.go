package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// Bounds every entry point must keep on any input (docs/reliability.md
// "Hostile input"): OpenSSL's
// fuzzing corpora hold BER that makes the Go CMS libraries allocate
// gigabytes.
const (
	hostileTime  = time.Second
	hostileBytes = 64 << 20
)

// entryPoint is one way untrusted bytes get into pecet. When a new parser
// lands (envelope Decrypt, the TSA, ValidateCertificate), add one line.
type entryPoint struct {
	name string
	call func(ctx context.Context, cc *grpc.ClientConn, in []byte) error
}

func hostileEntryPoints(roots *x509.CertPool) []entryPoint {
	validator := policy.Basic{Roots: roots}
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	anyKey := func(context.Context, envelope.RecipientID) (envelope.Key, error) { return rawKey{pk}, nil }
	return []entryPoint{
		{"signer.Parse", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			_, err := signer.Parse(in)
			return err
		}},
		{"signer.Verify", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			_, err := signer.Verify(in, signer.VerifyOptions{Validator: validator, Content: []byte("content")})
			return err
		}},
		{"SignService.Verify", func(ctx context.Context, cc *grpc.ClientConn, in []byte) error {
			_, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{Signature: in, Detached: &pecetv1.VerifyRequest_Content{Content: []byte("content")}})
			return err
		}},
		{"SignService.Verify attached", func(ctx context.Context, cc *grpc.ClientConn, in []byte) error {
			_, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{Signature: in})
			return err
		}},
		{"envelope.Parse", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			_, err := envelope.Parse(in, envelope.Limits{})
			return err
		}},
		// DecryptStream's incremental reader, with a key that every
		// RecipientInfo opens (to a random content key, mostly), so that
		// the content is read too.
		{"envelope.NewDecryptReader", func(ctx context.Context, _ *grpc.ClientConn, in []byte) error {
			dr, err := envelope.NewDecryptReader(ctx, bytes.NewReader(in), anyKey, envelope.DecryptOptions{}, 0)
			if err == nil {
				_, err = io.Copy(io.Discard, dr)
			}
			return err
		}},
		// The TSA: requests from POST /tsa, responses and tokens given to
		// pecet timestamp verify (CAdES-T tokens arrive through Verify above).
		{"tsa.ParseRequest", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			_, err := tsa.ParseRequest(in)
			return err
		}},
		{"tsa.ParseResponse", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			_, err := tsa.ParseResponse(in)
			return err
		}},
		{"tsa.Verify", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			_, _, err := tsa.Verify(in, tsa.VerifyOptions{Validator: validator, Data: []byte("content")})
			return err
		}},
		// Certificates reach pecet inside CMS (above) and then the
		// validator; a certificate that crypto/x509 accepts is judged.
		{"x509 + policy.Basic", func(_ context.Context, _ *grpc.ClientConn, in []byte) error {
			c, err := x509.ParseCertificate(in)
			if err != nil {
				return err
			}
			validator.Validate(policy.Request{Leaf: c, Purpose: policy.PurposeSigning})
			return nil
		}},
	}
}

// TestHostileInputs feeds every file of OpenSSL's CMS and X.509 fuzzing
// corpora to every entry point: no panic (the in-process server would
// answer Internal; the libraries would crash the test), each input answered
// within a second and with at most 64 MiB allocated.
func TestHostileInputs(t *testing.T) {
	dir := testtool.Vectors(t)
	var files []string
	for _, sub := range []string{"cms", "x509"} {
		fs, err := filepath.Glob(filepath.Join(dir, "openssl-fuzz", sub, "*"))
		if err != nil || len(fs) == 0 {
			t.Fatalf("no files in %s/openssl-fuzz/%s: %v", dir, sub, err)
		}
		files = append(files, fs...)
	}
	fx := newFixture(t)
	cc := fx.dial(t, "client")
	roots := x509.NewCertPool()
	roots.AddCert(fx.ca.Cert)

	for _, ep := range hostileEntryPoints(roots) {
		t.Run(ep.name, func(t *testing.T) {
			var worstTime time.Duration
			var worstBytes uint64
			for _, f := range files {
				in, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				took, alloc, err := measure(ep, cc, in)
				if errors.Is(err, errTooSlow) {
					t.Fatalf("%s: no answer within %v", filepath.Base(f), hostileTime)
				}
				if status.Code(err) == codes.Internal {
					// The interceptor turns a handler's panic into Internal.
					t.Errorf("%s: Internal (a panic or an unmapped error): %v", filepath.Base(f), err)
				}
				if took > hostileTime {
					t.Errorf("%s: %v", filepath.Base(f), took)
				}
				if alloc > hostileBytes {
					t.Errorf("%s: allocated %d MiB", filepath.Base(f), alloc>>20)
				}
				worstTime, worstBytes = max(worstTime, took), max(worstBytes, alloc)
			}
			t.Logf("%d inputs; slowest %v, most allocated %d KiB", len(files), worstTime, worstBytes>>10)
		})
	}
}

var errTooSlow = errors.New("no answer in time")

// rawKey opens every RecipientInfo it is given: raw RSA in software, as
// the token's CKM_RSA_X_509 would do it.
type rawKey struct{ k *rsa.PrivateKey }

func (r rawKey) Public() crypto.PublicKey { return &r.k.PublicKey }

func (r rawKey) DecryptRaw(_ context.Context, c []byte) ([]byte, error) {
	m := new(big.Int).Exp(new(big.Int).SetBytes(c), r.k.D, r.k.N)
	return m.FillBytes(make([]byte, r.k.Size())), nil
}

// measure runs one input through one entry point and reports how long it
// took and how many bytes the process allocated meanwhile (TotalAlloc: all
// allocations, freed or not, so a parser that churns counts too).
func measure(ep entryPoint, cc *grpc.ClientConn, in []byte) (time.Duration, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*hostileTime)
	defer cancel()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- ep.call(ctx, cc, in) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * hostileTime):
		return 0, 0, errTooSlow
	}
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return took, after.TotalAlloc - before.TotalAlloc, err
}
