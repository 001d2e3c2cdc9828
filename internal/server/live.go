package server

import (
	"context"
	"crypto/x509"
	"net/http"

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
}

type liveKey struct{}

// Swap makes l the configuration of every call that starts from now on;
// calls already running keep theirs. The caller must not change l (or
// what it points to) afterwards.
func (s *Server) Swap(l Live) {
	if l.KeyPolicy.ExpiryWarningDays == 0 {
		l.KeyPolicy.ExpiryWarningDays = config.DefaultExpiryWarningDays
	}
	if l.KeyPolicy.DualControl.RequestTTL == 0 {
		l.KeyPolicy.DualControl.RequestTTL = config.DefaultRequestTTL
	}
	if l.TSA != nil {
		l.tsaHTTP = s.tsaHTTP(l.TSA)
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
