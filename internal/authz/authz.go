// Package authz decides who may call what: the caller's identity comes from
// its mTLS client certificate (subject CN, or a URI SAN), config maps
// identities to roles and key aliases, and a fixed table maps each RPC to the
// roles allowed to call it.
package authz

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/pecet-hsm/pecet/internal/config"
)

// Errors; both map to PermissionDenied (Unauthenticated for no identity).
var (
	ErrNoIdentity = errors.New("authz: no client certificate")
	ErrDenied     = errors.New("authz: permission denied")
)

// Role names.
const (
	RoleClient  = "client"
	RoleGateway = "gateway"
	RoleOfficer = "officer"
)

// methodRoles lists, per full gRPC method name, the roles that may call it.
// A method missing here is denied to everybody: new RPCs must be added
// deliberately.
var methodRoles = map[string][]string{
	"/pecet.v1.SignService/Sign":                  {RoleClient},
	"/pecet.v1.SignService/Verify":                {RoleClient, RoleGateway},
	"/pecet.v1.KeyService/ListKeys":               {RoleClient, RoleGateway, RoleOfficer},
	"/pecet.v1.KeyService/GetKey":                 {RoleClient, RoleGateway, RoleOfficer},
	"/pecet.v1.PolicyService/ValidateCertificate": {RoleClient, RoleGateway},
	"/pecet.v1.PolicyService/ListPolicies":        {RoleClient, RoleGateway, RoleOfficer},
	// Encrypt needs no private key; naming a pecet key as a recipient also
	// needs that alias in the caller's keys. Decrypt is the gateway's, with
	// the DECRYPT keys config gives it.
	"/pecet.v1.EnvelopeService/Encrypt": {RoleClient},
	"/pecet.v1.EnvelopeService/Decrypt": {RoleGateway},
	// The streaming forms: the same roles as the unary calls.
	"/pecet.v1.EnvelopeService/EncryptStream": {RoleClient},
	"/pecet.v1.EnvelopeService/DecryptStream": {RoleGateway},
	// The TSA key is not the caller's key: time-stamps are a service to
	// whoever may call, as on the open HTTP endpoint.
	"/pecet.v1.TimestampService/Timestamp": {RoleClient, RoleGateway},
	// Key management: officers only.
	"/pecet.v1.KeyService/CreateKey":         {RoleOfficer},
	"/pecet.v1.KeyService/RotateKey":         {RoleOfficer},
	"/pecet.v1.KeyService/CreateCSR":         {RoleOfficer},
	"/pecet.v1.KeyService/ImportCertificate": {RoleOfficer},
	"/pecet.v1.KeyService/SetPrimaryVersion": {RoleOfficer},
	"/pecet.v1.KeyService/DisableKeyVersion": {RoleOfficer},
	"/pecet.v1.KeyService/EnableKeyVersion":  {RoleOfficer},
	"/pecet.v1.KeyService/DestroyKeyVersion": {RoleOfficer},
	"/pecet.v1.KeyService/ListRequests":      {RoleOfficer},
	"/pecet.v1.KeyService/ApproveRequest":    {RoleOfficer},
}

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
}

// New builds an Authorizer from config.
func New(clients []config.Client) *Authorizer {
	m := make(map[string]config.Client, len(clients))
	for _, c := range clients {
		m[c.Identity] = c
	}
	return &Authorizer{clients: m}
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
func (a *Authorizer) Authorize(ctx context.Context, method string) (*Caller, error) {
	cert := peerCertificate(ctx)
	if cert == nil {
		return nil, ErrNoIdentity
	}
	var caller *Caller
	for _, id := range Identities(cert) {
		if cl, ok := a.clients[id]; ok {
			caller = &Caller{Identity: id, Roles: cl.Roles, keys: cl.Keys}
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
	allowed := methodRoles[method]
	for _, r := range caller.Roles {
		if slices.Contains(allowed, r) {
			return caller, nil
		}
	}
	return caller, fmt.Errorf("%w: %s may not call %s", ErrDenied, caller.Identity, method)
}

func peerCertificate(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
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

// Methods lists every method in the role table (tests check that each
// registered RPC is there).
func Methods() []string {
	out := make([]string, 0, len(methodRoles))
	for m := range methodRoles {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// AllowedRoles returns the roles that may call a full gRPC method name.
func AllowedRoles(method string) []string { return slices.Clone(methodRoles[method]) }
