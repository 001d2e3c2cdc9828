package server

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// TestTSAChain: Verify offers this TSA's own chain to tokens that carry
// no certificates. It reads the chain per call (through the keystore's
// cache), so that a new primary version after a rotation is used without
// a reload, and falls back to the chain read when the configuration was
// put in force when the token does not answer (before, the chain was then
// left out and such a token did not verify).
func TestTSAChain(t *testing.T) {
	var reads atomic.Int64
	var down atomic.Bool // the token does not answer
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		inner := TSAKey(d.Keys, "tsa")
		a, err := tsa.New(tsa.Config{
			Key: func(ctx context.Context) (crypto.Signer, []*x509.Certificate, error) {
				reads.Add(1)
				if down.Load() {
					return nil, nil, errors.New("token not answering")
				}
				return inner(ctx)
			},
			Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}, Accuracy: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		d.TSA = a
	}})
	cc := f.dial(t, "client")
	ctx := ctxT(t)

	// A CAdES-T signature whose token carries no certificate: only the
	// configured chain verifies it.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.Issue("outside signer", devca.CMSSign, key.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts := pecetv1.NewTimestampServiceClient(cc)
	data := []byte("<PRIHL/>")
	sig, err := signer.Sign(data, key, []*x509.Certificate{cert, f.ca.Cert}, signer.Options{
		UnsignedAttributes: func(sv []byte) ([]signer.Attribute, error) {
			d := sha256.Sum256(sv)
			r, err := ts.Timestamp(ctx, &pecetv1.TimestampRequest{Digest: d[:], CertReq: false})
			if err != nil {
				return nil, err
			}
			return []signer.Attribute{{Type: ParseOID(signer.OIDSignatureTimeStampToken), Values: [][]byte{r.GetToken()}}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	sc := pecetv1.NewSignServiceClient(cc)
	verify := func(what string) {
		t.Helper()
		r, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: data}})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || r.GetSignatureLevel() != "CAdES-BASELINE-T" {
			t.Fatalf("%s: %s %v level %q", what, r.GetVerdict().GetStatus(), r.GetVerdict().GetReasons(), r.GetSignatureLevel())
		}
	}
	reads.Store(0)
	verify("token answers")
	if n := reads.Load(); n != 1 {
		t.Fatalf("Verify read the TSA key %d times, want 1 (per call, cached by the keystore)", n)
	}
	// The token does not answer: the chain read at Swap is used.
	down.Store(true)
	verify("token down")
	verify("token down again")
	down.Store(false)
	// Down at a reload and down at the call: no chain; up at the call:
	// read then.
	down.Store(true)
	f.srv.Swap(*f.srv.Current())
	down.Store(false)
	verify("token down at reload, up at the call")
}
