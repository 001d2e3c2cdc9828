package server

import (
	"context"
	"crypto/x509"
	"net/http"
	"slices"
	"time"

	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/tsa"
)

// Live is the part of the server's dependencies that a configuration
// reload replaces (SIGHUP, `pecetd reload`; docs/operations.md "Reloading
// the configuration"): who may call what, the policies with their trusted
// lists, the TSA and the key-management rules. A Live is never changed
// after Swap: a reload builds a new one and swaps the pointer, and every
// call pins the snapshot that was current when it started, so an in-flight
// call finishes under the configuration it began with.
type Live struct {
	Auth            *authz.Authorizer
	Validator       policy.Validator
	Policies        Policies
	TSA             *tsa.Authority
	TSACertificates []*x509.Certificate
	KeyPolicy       config.Keys
	RequiredKeys    []string

	// tsaHTTP is POST /tsa for this TSA (nil without one).
	tsaHTTP http.Handler
	// tsaCerts are TSACertificates and this TSA's own chain as Swap read
	// them, for calls made while the token does not answer
	// (tsaCertificates); tsaRead is false when the token could not be read
	// then either.
	tsaCerts []*x509.Certificate
	tsaRead  bool
}

// tsaChainTimeout bounds Swap's read of the TSA's own chain: a token that
// does not answer must not hold up a reload.
const tsaChainTimeout = 5 * time.Second

type liveKey struct{}

// Swap makes l the configuration of every call that starts from now on;
// calls already running keep theirs. The caller must not change l (or
// what it points to) afterwards.
func (s *Server) Swap(l Live) {
	if l.KeyPolicy.ExpiryWarningDays == 0 {
		l.KeyPolicy.ExpiryWarningDays = config.DefaultExpiryWarningDays
	}
	if l.KeyPolicy.ArchiveRenewalWarningDays == 0 {
		l.KeyPolicy.ArchiveRenewalWarningDays = config.DefaultArchiveRenewalWarningDays
	}
	if l.KeyPolicy.DualControl.RequestTTL == 0 {
		l.KeyPolicy.DualControl.RequestTTL = config.DefaultRequestTTL
	}
	l.tsaCerts, l.tsaRead = l.TSACertificates, true
	if l.TSA != nil {
		l.tsaHTTP = s.tsaHTTP(l.TSA)
		ctx, cancel := context.WithTimeout(context.Background(), tsaChainTimeout)
		l.tsaCerts, l.tsaRead = readTSACertificates(ctx, &l)
		cancel()
	}
	s.cur.Store(&l)
}

// Current is the configuration new calls start with.
func (s *Server) Current() *Live { return s.cur.Load() }

// live is the snapshot the call in ctx pinned (the current one outside a
// call).
func (s *Server) live(ctx context.Context) *Live {
	if ctx != nil {
		if l, ok := ctx.Value(liveKey{}).(*Live); ok {
			return l
		}
	}
	return s.cur.Load()
}

// pin makes ctx carry the current snapshot for the rest of the call.
func (s *Server) pin(ctx context.Context) (context.Context, *Live) {
	l := s.cur.Load()
	return context.WithValue(ctx, liveKey{}, l), l
}

// serveTSA answers POST /tsa with the TSA in force, 404 without one.
func (s *Server) serveTSA(w http.ResponseWriter, r *http.Request) {
	l := s.cur.Load()
	if l.TSA == nil {
		http.NotFound(w, r)
		return
	}
	l.tsaHTTP.ServeHTTP(w, r)
}

// tsaCertificates are the configured TSA certificates and this TSA's own
// chain: tokens without certificates are verifiable, never accepted
// unverified. lv is the configuration the caller read once (Server.live).
// The chain is read per call, through the keystore's cache (a read of
// the token at most every few hundred milliseconds), so that after a
// rotation of the TSA key the new primary version's tokens verify without
// a reload; when the token does not answer, the chain read when the
// configuration was put in force (Swap) is used instead.
func tsaCertificates(ctx context.Context, lv *Live) []*x509.Certificate {
	if certs, ok := readTSACertificates(ctx, lv); ok || !lv.tsaRead {
		return certs
	}
	return lv.tsaCerts
}

// readTSACertificates reads this TSA's chain (its key's primary version)
// from the token; false when it could not.
func readTSACertificates(ctx context.Context, lv *Live) ([]*x509.Certificate, bool) {
	certs := lv.TSACertificates
	if lv.TSA == nil {
		return certs, true
	}
	_, chain, err := lv.TSA.KeySource()(ctx)
	if err != nil {
		return certs, false
	}
	return append(slices.Clip(certs), chain...), true
}
