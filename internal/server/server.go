// Package server wires the libraries into pecetd's gRPC services and HTTP
// endpoints. It holds no key state: every dependency comes in through Deps,
// and the keys live on the token.
package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// The server needs three things of a token, each its own interface so that
// a handler gets the narrowest one: Keys (use the keys), KeyAdmin (change
// them, KeyService writes) and RequestStore (pending dual-control
// requests). *keystore.Store implements all three.

// Keys is key use: signing, decryption, listing, readiness.
type Keys interface {
	Signer(ctx context.Context, alias string, version int, p keystore.Purpose) (*keystore.KeySigner, error)
	ListKeys(ctx context.Context) ([]keystore.Key, error)
	GetKey(ctx context.Context, alias string) (keystore.Key, error)
	Decrypter(ctx context.Context, alias string, version int) (*keystore.KeyDecrypter, error)
	Ping(ctx context.Context) error
}

// KeyAdmin is the key lifecycle (KeyService writes, officers only).
type KeyAdmin interface {
	CreateKey(ctx context.Context, alias string, p keystore.Purpose, a keystore.Algorithm) (keystore.Version, error)
	RotateKey(ctx context.Context, alias string) (keystore.Version, error)
	ImportCertificate(ctx context.Context, alias string, version int, chain []*x509.Certificate) (keystore.Version, error)
	SetPrimaryVersion(ctx context.Context, alias string, version int) (keystore.Key, error)
	EnableKeyVersion(ctx context.Context, alias string, version int) (keystore.Version, error)
	DisableKeyVersion(ctx context.Context, alias string, version int) (keystore.Version, error)
	DestroyKeyVersion(ctx context.Context, alias string, version int) (keystore.Version, error)
	// ProofSigner signs a CSR's proof of possession (CreateCSR).
	ProofSigner(ctx context.Context, alias string, version int) (crypto.Signer, error)
}

// RequestStore keeps the dual-control requests on the token, for every
// replica.
type RequestStore interface {
	PutRequest(ctx context.Context, id string, value []byte) error
	GetRequest(ctx context.Context, id string) ([]byte, error)
	ListRequests(ctx context.Context) ([]keystore.Request, error)
	DeleteRequest(ctx context.Context, id string) error
}

// Deps are the server's collaborators. Auth, Validator, Policies, TSA,
// TSACertificates, KeyPolicy and RequiredKeys are only the first Live (a
// reload replaces them): handlers read those through s.live(ctx), never
// s.d (live.go).
type Deps struct {
	// Keys is key use (Sign, Decrypt, ListKeys, GetKey, readiness).
	Keys Keys
	// KeyAdmin changes keys (KeyService writes, CreateCSR); nil: those
	// calls fail with Unimplemented.
	KeyAdmin KeyAdmin
	// Requests stores pending dual-control requests; nil: calls that need
	// one fail with Unimplemented.
	Requests  RequestStore
	Validator policy.Validator
	// Policies lists the policies for ListPolicies and checks names; nil
	// means only the default exists.
	Policies Policies
	Auth     *authz.Authorizer
	// Audit is the audit log; nil means events go to Log only (tests of
	// other services). pecetd always sets one.
	Audit *audit.Log
	// KeyPolicy: dual control and the certificate-expiry warning.
	KeyPolicy config.Keys
	Metrics   *metrics.Metrics
	Log       *slog.Logger
	// Now is the clock (signing time); nil means time.Now.
	Now func() time.Time
	// MaxMessageBytes bounds gRPC messages both ways.
	MaxMessageBytes int
	// CMSLimits bound the parsing of CMS input (zero fields: signer's
	// defaults).
	CMSLimits signer.Limits
	// Limiter bounds each client identity's request rate; nil: no limit.
	// Bound its table (ratelimit.NewBounded): denied callers' identities
	// go through it too, before their denial is audited.
	Limiter *ratelimit.Limiter
	// HTTP is the HTTP listener's timeouts, body cap and POST /tsa rate
	// limits (config http:); zero timeouts and cap take config's defaults,
	// zero /tsa rates mean no limit (pecetd's config always has them).
	HTTP config.HTTP
	// GRPC holds the gRPC server's stream and keepalive settings (config
	// grpc:; zero fields take config's defaults).
	GRPC config.GRPC
	// RequiredKeys must be on the token for readiness.
	RequiredKeys []string
	// Envelope bounds Encrypt and Decrypt (recipients, body, parsing);
	// zero fields take envelope's defaults.
	Envelope envelope.Limits
	// OAEP says where RSA-OAEP padding is removed on Decrypt (config
	// token.oaep; empty is auto).
	OAEP envelope.OAEPMode
	// TSA is the time-stamping authority; nil when none is configured
	// (POST /tsa is then 404, Timestamp and Sign with timestamp
	// FailedPrecondition).
	TSA *tsa.Authority
	// TSACertificates are known TSA certificates for verifying CAdES-T
	// time-stamps that carry none.
	TSACertificates []*x509.Certificate
	// RSACheckEvery samples the self-check of RSA signatures (config
	// token.rsa_check_every): one in RSACheckEvery; 0 or 1, the default,
	// verifies every one (signer.Options.RSACheck says when to sample).
	RSACheckEvery int
}

// Server implements the pecet.v1 services.
type Server struct {
	d      Deps
	health *health.Server
	// items runs batch items on kept goroutines (gopool.go).
	items *goPool
	// draining is set by Shutdown: /readyz then says 503 so that load
	// balancers and Kubernetes stop sending new calls during the drain.
	draining atomic.Bool
	// drained is closed by Shutdown; it ends the health Watch streams.
	drained   chan struct{}
	drainOnce sync.Once
	// ecdsaCheck samples the self-check of ECDSA signatures: verifying
	// every one took half of pecet's CPU per P-256 signature
	// (docs/performance.md); one in 64 still catches a token that keeps
	// returning wrong signatures. RSA is verified every time (signer).
	ecdsaCheck *signer.Sampler
	// rsaCheck is nil (every RSA signature verified) unless
	// token.rsa_check_every says the token checks its own CRT results.
	rsaCheck *signer.Sampler
	// tsaClients and tsaAll limit POST /tsa per client address and for
	// all clients (nil: no limit).
	tsaClients, tsaAll *ratelimit.Limiter
	// cur is the reloadable configuration (live.go).
	cur atomic.Pointer[Live]
}

// HTTP/2 flow-control windows (see GRPC): per stream, and per connection
// (the sum a client may have in flight over all its streams).
const (
	streamWindowBytes = 1 << 20
	connWindowBytes   = 16 << 20
)

// ecdsaCheckEvery is the ECDSA self-check sampling rate.
const ecdsaCheckEvery = 64

// streamWorkers is how many kept goroutines serve calls (grpc.NumStreamWorkers):
// more than the calls a loaded pecetd has in flight on a token of 16 sessions.
const streamWorkers = 64

// New checks deps and builds a Server.
func New(d Deps) *Server {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Audit == nil {
		d.Audit, _ = audit.Open(audit.Options{Mirror: d.Log, Now: d.Now}) // no file: cannot fail
	}
	if d.KeyPolicy.ExpiryWarningDays == 0 {
		d.KeyPolicy.ExpiryWarningDays = config.DefaultExpiryWarningDays
	}
	if d.KeyPolicy.ArchiveRenewalWarningDays == 0 {
		d.KeyPolicy.ArchiveRenewalWarningDays = config.DefaultArchiveRenewalWarningDays
	}
	if d.KeyPolicy.DualControl.RequestTTL == 0 {
		d.KeyPolicy.DualControl.RequestTTL = config.DefaultRequestTTL
	}
	if d.KeyAdmin == nil {
		d.KeyAdmin = noKeyAdmin{}
	}
	if d.Requests == nil {
		d.Requests = noRequestStore{}
	}
	d.HTTP, d.GRPC = d.HTTP.WithDefaults(), d.GRPC.WithDefaults()
	s := &Server{d: d, health: health.NewServer(), drained: make(chan struct{}), ecdsaCheck: &signer.Sampler{Every: ecdsaCheckEvery}, items: newGoPool(goPoolIdle)}
	s.tsaClients, s.tsaAll = tsaLimiters(d.HTTP.TSA, d.Now)
	if d.RSACheckEvery > 1 {
		s.rsaCheck = &signer.Sampler{Every: uint64(d.RSACheckEvery)}
	}
	s.Swap(Live{Auth: d.Auth, Validator: d.Validator, Policies: d.Policies, TSA: d.TSA, TSACertificates: d.TSACertificates, KeyPolicy: d.KeyPolicy, RequiredKeys: d.RequiredKeys})
	return s
}

// GRPC builds the gRPC server with mTLS credentials, interceptors, the
// pecet.v1 services, health and reflection.
func (s *Server) GRPC(tlsConf *tls.Config) *grpc.Server {
	gc, k := s.d.GRPC, s.d.GRPC.Keepalive
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.d.MaxMessageBytes),
		grpc.MaxSendMsgSize(s.d.MaxMessageBytes),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
		// Fixed HTTP/2 flow-control windows instead of gRPC's dynamic
		// (BDP) ones, which grow to 16 MiB per stream: what a client has
		// sent and the handler has not read yet waits in the transport, so
		// the stream window is what bounds a streaming call's memory
		// (EncryptStream, DecryptStream); with BDP windows 16 concurrent
		// 10 MB DecryptStreams held most of their bodies there. 1 MiB per
		// stream still fills a LAN (docs/performance.md).
		grpc.InitialWindowSize(streamWindowBytes),
		grpc.InitialConnWindowSize(connWindowBytes),
		// At most this many calls in flight per connection; more wait in
		// the client (the token has max_sessions sessions anyway).
		grpc.MaxConcurrentStreams(uint32(gc.MaxConcurrentStreams)),
		// Clients keep connections open (a TLS handshake costs more than a
		// signature); allow their keepalive pings (the pecet client pings
		// every 30 s). The server pings idle connections and drops dead
		// ones, closes connections without calls after MaxConnectionIdle,
		// and every connection after MaxConnectionAge so that clients
		// spread over new replicas (docs/operations.md "Network limits").
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: k.MinTime, PermitWithoutStream: *k.PermitWithoutStream}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: k.MaxConnectionIdle, MaxConnectionAge: k.MaxConnectionAge, MaxConnectionAgeGrace: k.MaxConnectionAgeGrace,
			Time: k.Time, Timeout: k.Timeout,
		}),
		// Large bodies are copied once on the way in and not at all on the
		// way out (codec.go).
		grpc.ForceServerCodecV2(newBodyCodec()),
		// Calls run on kept goroutines instead of one new goroutine per
		// call: a Sign grows a fresh goroutine's stack several times
		// (cryptobyte's nested builders), and copying those stacks was
		// 8.5 % of pecetd's CPU under P-256 sign load, 1.5 % with kept
		// ones (docs/performance.md "Where a call's time goes"). Calls
		// beyond the workers still get a goroutine of their own.
		grpc.NumStreamWorkers(streamWorkers),
	}
	if tlsConf != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	g := grpc.NewServer(opts...)
	pecetv1.RegisterSignServiceServer(g, &signService{s: s})
	pecetv1.RegisterKeyServiceServer(g, &keyService{s: s})
	pecetv1.RegisterPolicyServiceServer(g, &policyService{s: s})
	pecetv1.RegisterEnvelopeServiceServer(g, &envelopeService{s: s})
	pecetv1.RegisterTimestampServiceServer(g, &timestampService{s: s})
	pecetv1.RegisterArchiveServiceServer(g, &archiveService{s: s})
	healthpb.RegisterHealthServer(g, &drainingHealth{Server: s.health, drain: s.drained})
	reflection.Register(g)
	return g
}

// SetServing marks the gRPC health service SERVING (or NOT_SERVING).
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for _, name := range []string{"pecet.v1.SignService", "pecet.v1.KeyService", "pecet.v1.PolicyService", "pecet.v1.EnvelopeService", "pecet.v1.TimestampService", "pecet.v1.ArchiveService"} {
		s.health.SetServingStatus(name, st)
	}
}

// Shutdown marks every service NOT_SERVING, so load balancers drain us,
// and ends the health Watch streams once they have said so (drainingHealth).
func (s *Server) Shutdown() {
	s.draining.Store(true)
	s.health.Shutdown()
	s.drainOnce.Do(func() { close(s.drained) })
}

// HTTP serves /healthz (liveness: the process answers; never the token),
// /readyz (the token answers, is logged in and has the required keys, the
// TSA's clock is trusted when a time reference is configured, and no drain
// has begun), /metrics and, with a TSA, POST /tsa (RFC 3161 over HTTP, no
// client certificate: any RFC 3161 client may ask).
func (s *Server) HTTP() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if msg := s.ready(ctx); msg != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(msg + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.d.Metrics.Registry, promhttp.HandlerOpts{}))
	// The TSA in force answers, or 404 without one (a reload may add or
	// remove it: live.go).
	mux.HandleFunc("/tsa", s.serveTSA)
	return mux
}

// ready returns "" when ready, else a short public reason (the cause goes to
// the log).
func (s *Server) ready(ctx context.Context) string {
	if s.draining.Load() {
		return "shutting down"
	}
	if err := s.d.Keys.Ping(ctx); err != nil {
		s.d.Log.Warn("not ready", "err", err)
		if errors.Is(err, keystore.ErrPINIncorrect) || errors.Is(err, keystore.ErrPINLocked) {
			return "token refused the PIN"
		}
		return "token unavailable"
	}
	l := s.live(ctx)
	for _, alias := range l.RequiredKeys {
		if _, err := s.d.Keys.GetKey(ctx, alias); err != nil {
			s.d.Log.Warn("not ready: required key", "alias", alias, "err", err)
			return "required key " + alias + " not found on the token"
		}
	}
	if l.TSA != nil {
		if err := l.TSA.Ready(); err != nil {
			s.d.Log.Warn("not ready", "err", err)
			return "TSA time source not trusted"
		}
	}
	return ""
}
