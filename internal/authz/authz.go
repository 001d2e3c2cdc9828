// Package authz decides who may call what: the caller's identity comes from
// its mTLS client certificate (subject CN, or a URI SAN) together with the
// CA that issued it (and optionally its key), config maps identities to
// roles and key aliases, and the RPC table (internal/rpctable) maps each
// RPC to the roles allowed to call it. ClientCRL refuses revoked client certificates in the
// TLS handshake. See docs/security.md "Client identities".
package authz

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/internal/rpctable"
)

// Errors; both map to PermissionDenied (Unauthenticated for no identity).
var (
	ErrNoIdentity = errors.New("authz: no client certificate")
	ErrDenied     = errors.New("authz: permission denied")
)

// Role names (the RPC table's).
const (
	RoleClient  = rpctable.RoleClient
	RoleGateway = rpctable.RoleGateway
	RoleOfficer = rpctable.RoleOfficer
)

// Caller is an authenticated identity with what config grants it.
type Caller struct {
	Identity string
	Roles    []string
	keys     []string
}

// HasRole reports whether the caller holds role r.
func (c *Caller) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// MayUseKey reports whether config grants the caller this key alias.
// Officers manage every key.
func (c *Caller) MayUseKey(alias string) bool {
	return c.HasRole(RoleOfficer) || slices.Contains(c.keys, "*") || slices.Contains(c.keys, alias)
}

// Authorizer holds the identity table.
type Authorizer struct {
	clients map[string]config.Client
	pins    map[string]pins
}

// pins bind a configured name to the CA that issues its certificate and,
// optionally, to its key. No issuers means no issuer check (New without
// the client CAs, for tests); err is a pin that did not load, which denies
// every call of that client (fail closed).
type pins struct {
	issuers [][sha256.Size]byte
	key     *[sha256.Size]byte
	err     error
}

// New builds an Authorizer from config without knowing grpc.tls.client_ca:
// explicit pins (issuer, issuer_spki_sha256, key_spki_sha256) are enforced,
// a client without an issuer pin is not tied to an issuer, and a pin that
// does not load denies that client. pecetd uses Load.
func New(clients []config.Client) *Authorizer {
	a, _ := load(clients, nil)
	return a
}

// Load builds the Authorizer pecetd uses. clientCAs are the certificates
// of grpc.tls.client_ca. Each client is pinned to the CA that issues its
// certificate (the verified chain's second certificate): its issuer or
// issuer_spki_sha256, or by default the single certificate of client_ca.
// A client_ca with several certificates and a client without a pin is an
// error, because then any of them could issue that client's name; so is a
// pin that does not load.
func Load(clients []config.Client, clientCAs []*x509.Certificate) (*Authorizer, error) {
	if len(clientCAs) == 0 {
		return nil, errors.New("authz: no client CA certificates")
	}
	return load(clients, clientCAs)
}

func load(clients []config.Client, clientCAs []*x509.Certificate) (*Authorizer, error) {
	a := &Authorizer{clients: make(map[string]config.Client, len(clients)), pins: make(map[string]pins, len(clients))}
	var errs []error
	for _, c := range clients {
		a.clients[c.Identity] = c
		p := clientPins(c, clientCAs)
		if p.err != nil {
			errs = append(errs, p.err)
		}
		a.pins[c.Identity] = p
	}
	return a, errors.Join(errs...)
}

func clientPins(c config.Client, clientCAs []*x509.Certificate) pins {
	var p pins
	switch {
	case c.Issuer != "":
		certs, err := pki.ReadCertificates(c.Issuer)
		if err != nil {
			p.err = fmt.Errorf("client %s: issuer: %w", c.Identity, err)
			return p
		}
		if len(certs) != 1 || !certs[0].IsCA {
			p.err = fmt.Errorf("client %s: issuer %s must hold exactly one CA certificate", c.Identity, c.Issuer)
			return p
		}
		p.issuers = append(p.issuers, spkiHash(certs[0]))
	case c.IssuerSPKISHA256 != "":
		h, ok := config.ParseSHA256(c.IssuerSPKISHA256)
		if !ok {
			p.err = fmt.Errorf("client %s: issuer_spki_sha256 is not a SHA-256 in hex", c.Identity)
			return p
		}
		p.issuers = append(p.issuers, h)
	case len(clientCAs) == 1:
		p.issuers = append(p.issuers, spkiHash(clientCAs[0]))
	case len(clientCAs) > 1:
		p.err = fmt.Errorf("client %s: grpc.tls.client_ca holds %d certificates, any of which could issue this name: give the client issuer (its CA's certificate file) or issuer_spki_sha256", c.Identity, len(clientCAs))
		return p
	}
	if c.KeySPKISHA256 != "" {
		h, ok := config.ParseSHA256(c.KeySPKISHA256)
		if !ok {
			p.err = fmt.Errorf("client %s: key_spki_sha256 is not a SHA-256 in hex", c.Identity)
			return p
		}
		p.key = &h
	}
	return p
}

// SPKISHA256 is the SHA-256 of a certificate's SubjectPublicKeyInfo, the
// fingerprint issuer_spki_sha256 and key_spki_sha256 take (openssl x509
// -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum).
func SPKISHA256(c *x509.Certificate) string {
	h := spkiHash(c)
	return hex.EncodeToString(h[:])
}

func spkiHash(c *x509.Certificate) [sha256.Size]byte { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

// check holds a verified chain to the client's pins.
func (p pins) check(identity string, chain []*x509.Certificate) error {
	if p.err != nil {
		return fmt.Errorf("%w: %s: its issuer or key pin did not load", ErrDenied, identity)
	}
	if len(p.issuers) > 0 {
		// chain[0] is the client's certificate; chain[1] its issuer (a
		// certificate in client_ca or an intermediate the client sent).
		if len(chain) < 2 || !slices.Contains(p.issuers, spkiHash(chain[1])) {
			return fmt.Errorf("%w: %s: the certificate was not issued by the CA configured for this client", ErrDenied, identity)
		}
	}
	if p.key != nil && spkiHash(chain[0]) != *p.key {
		return fmt.Errorf("%w: %s: the certificate's key is not the one pinned for this client", ErrDenied, identity)
	}
	return nil
}

// Identities returns the names a certificate can be known by: each URI SAN,
// then the subject CN.
func Identities(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		ids = append(ids, u.String())
	}
	if cert.Subject.CommonName != "" {
		ids = append(ids, cert.Subject.CommonName)
	}
	return ids
}

// Authorize finds the caller of ctx and checks it may call method.
//
// The first of the certificate's names (URI SANs, then CN) that config
// knows is the caller; its pins must then hold, or the call is denied
// (a name is not looked up further: a certificate whose issuer or key does
// not fit the name it claims is refused, not given another identity).
func (a *Authorizer) Authorize(ctx context.Context, method string) (*Caller, error) {
	chain := peerChain(ctx)
	if chain == nil {
		return nil, ErrNoIdentity
	}
	cert := chain[0]
	var caller *Caller
	for _, id := range Identities(cert) {
		if cl, ok := a.clients[id]; ok {
			caller = &Caller{Identity: id, Roles: cl.Roles, keys: cl.Keys}
			if err := a.pins[id].check(id, chain); err != nil {
				// The name is reported, the roles are not granted.
				return &Caller{Identity: id}, err
			}
			break
		}
	}
	if caller == nil {
		ids := Identities(cert)
		name := "(no CN or URI)"
		if len(ids) > 0 {
			name = ids[len(ids)-1]
		}
		return &Caller{Identity: name}, fmt.Errorf("%w: %s is not a configured client", ErrDenied, name)
	}
	// The RPC table (internal/rpctable) lists the roles of each method; a
	// method without a row is denied to everybody.
	allowed := rpctable.Roles(method)
	for _, r := range caller.Roles {
		if slices.Contains(allowed, r) {
			return caller, nil
		}
	}
	return caller, fmt.Errorf("%w: %s may not call %s", ErrDenied, caller.Identity, method)
}

// peerChain is the peer's first verified chain, the client's certificate
// first, or nil.
func peerChain(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0]
}

type callerKey struct{}

// WithCaller stores the caller in ctx for handlers.
func WithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller stored by the interceptor.
func CallerFrom(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// AllowedRoles returns the roles that may call a full gRPC method name.
func AllowedRoles(method string) []string { return rpctable.Roles(method) }
