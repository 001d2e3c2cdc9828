package server

import (
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/policy"
)

// gatedPolicies holds the first Has call until release is closed: the
// moment a reload swaps the configuration under a call in flight.
type gatedPolicies struct {
	inner   Policies
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (g *gatedPolicies) Has(name string) bool {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return g.inner.Has(name)
}

func (g *gatedPolicies) Policies(at time.Time) []policy.PolicyInfo { return g.inner.Policies(at) }

func (g *gatedPolicies) CheckOverrides(r policy.Request) error { return g.inner.CheckOverrides(r) }

// TestSwapPinsInFlightCalls: a call that started before a reload finishes
// under the configuration it started with (policy and validator), and the
// next call gets the new one, here one that no longer knows the caller.
func TestSwapPinsInFlightCalls(t *testing.T) {
	gate := &gatedPolicies{entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		gate.inner = d.Policies
		d.Policies = gate
	}})
	ctx := ctxT(t)
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	req := &pecetv1.ValidateCertificateRequest{Chain: [][]byte{k.Versions[0].Certificate().Raw}, Purpose: pecetv1.Purpose_SIGNING}
	pc := pecetv1.NewPolicyServiceClient(f.dial(t, "client"))
	type result struct {
		resp *pecetv1.ValidateCertificateResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := pc.ValidateCertificate(ctx, req)
		done <- result{resp, err}
	}()
	<-gate.entered
	// The reload: another default policy without the test CA, and a client
	// list without "client".
	other, err := policy.NewEngine("other", &policy.Policy{Name: "other", Anchors: []*x509.Certificate{}, Revocation: policy.RevocationOff})
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Swap(Live{Auth: authz.New([]config.Client{{Identity: "gateway", Roles: []string{"gateway"}}}), Validator: other, Policies: other})
	close(gate.release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if v := r.resp.GetVerdict(); v.GetStatus() != pecetv1.Verdict_VALID || v.GetPolicy() != "test" {
		t.Fatalf("the call in flight: %v under policy %q, want VALID under the old policy test: %v", v.GetStatus(), v.GetPolicy(), v.GetReasons())
	}
	if _, err := pc.ValidateCertificate(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a call after the reload: %v, want PermissionDenied", err)
	}
}
