// Package daemon runs pecetd: it reads the config (or makes the dev folder),
// opens the token, checks what can be checked at start-up, serves gRPC and
// HTTP, and shuts down gracefully.
package daemon

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devmode"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
	"github.com/pecet-hsm/pecet/internal/sdnotify"
	"github.com/pecet-hsm/pecet/internal/server"
	"github.com/pecet-hsm/pecet/internal/version"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// Options come from pecetd's flags; flags win over the config file.
type Options struct {
	ConfigPath string
	Dev        bool
	DevDir     string
	GRPCAddr   string
	HTTPAddr   string
	// AuditNewLog: when the audit log does not match the token's last
	// checkpoint, move it aside and start a new log with a signed note of
	// the break, instead of refusing to start (pecetd --audit-new-log).
	AuditNewLog bool
	// DevAllowRemote lets --dev listen on non-loopback addresses (with a
	// warning); without it pecetd --dev refuses them.
	DevAllowRemote bool
	// PIDFile, when set, receives pecetd's process id once it serves, for
	// `pecetd reload --pid-file` (removed at exit).
	PIDFile string
	// Reload asks for a configuration reload (SIGHUP); nil: none.
	Reload <-chan struct{}
	// Out receives the dev-mode banner (stdout).
	Out io.Writer
	// Now is the clock of everything where time decides an outcome:
	// validation time, CRL and OCSP freshness, trusted-list replacement,
	// TSA genTime, signing time, dual-control expiry, the certificate-expiry
	// warning, the audit log's timestamps and the rate limits
	// (docs/reliability.md, "Service behaviour"). nil: time.Now. Tests move it.
	Now func() time.Time
}

// Endpoints is what pecetd listens on; in dev mode it is also written to
// DIR/pecetd.addr so that `pecet` finds a server started on other ports.
type Endpoints struct {
	GRPC string `json:"grpc"`
	HTTP string `json:"http"`
	// PID is pecetd's process id, for `pecetd reload`.
	PID int `json:"pid,omitempty"`
}

// AddrFile is the name of the endpoints file in the dev folder.
const AddrFile = "pecetd.addr"

// Run serves until ctx is cancelled (SIGTERM), then drains and returns nil.
// Start-up problems (bad config, missing module, wrong PIN) are errors.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	d, err := build(ctx, o, log)
	if err != nil {
		return err
	}
	// Last to run, after serve has drained the servers: the audit log's
	// stop line and final checkpoint, then the token.
	defer d.close()
	return serve(ctx, d)
}

// instance is what build makes from the config and serve runs: the open
// token and audit log (which close must close), and the server with its
// dependencies.
type instance struct {
	o       Options // with the dev folder's default filled in
	cfg     *config.Config
	log     *slog.Logger
	ks      *keystore.Store
	al      *audit.Log
	rl      *reloader
	st      *state
	srv     *server.Server
	tlsConf *tls.Config
}

// close closes what build opened, in reverse: the audit log (its stop line
// and final checkpoint, signed with the token's key) before the token
// (sessions closed, logged out, the module finalised).
func (d *instance) close() {
	if d.al != nil {
		_ = d.al.Write(audit.Event{Phase: audit.PhaseStop})
		if err := d.al.Close(); err != nil {
			d.log.Error("closing the audit log", "err", err)
		}
	}
	if d.ks != nil {
		if err := d.ks.Close(); err != nil {
			d.log.Warn("closing the token", "err", err.Error())
		}
		d.log.Info("token closed")
	}
}

// build turns options and config into an instance ready to serve: it opens
// the token (provisioning the dev keys with --dev) and the audit log,
// builds the policies, TSA and authorisation (reload.go), the server TLS
// and the server. On an error it closes what it opened and returns nil.
func build(ctx context.Context, o Options, log *slog.Logger) (_ *instance, err error) {
	if o.Dev && o.DevDir == "" {
		o.DevDir = devmode.DefaultDir
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg, err := loadConfig(o)
	if err != nil {
		return nil, err
	}
	applyFlags(cfg, o)
	if o.Dev {
		remote, err := devmode.CheckListen(cfg.GRPC.Addr, cfg.HTTP.Addr, o.DevAllowRemote)
		if err != nil {
			return nil, err
		}
		if len(remote) > 0 {
			log.Warn("dev mode reachable from other machines (--dev-allow-remote): the dev CA key and PIN are in the dev folder, POST /tsa and /metrics are open", "listen", remote, "dev_dir", o.DevDir)
		}
	}
	if mb := cfg.Limits.MemoryLimitMB; mb > 0 {
		// A soft limit: the collector works harder near it rather than
		// letting the heap double under large bodies (docs/performance.md).
		debug.SetMemoryLimit(int64(mb) << 20)
		log.Info("memory limit", "mib", mb)
	}
	if cfg.Audit.File == "" {
		return nil, errors.New("config: audit.file is required: every key operation is audited, and without a file pecetd would have nowhere to write (dev mode uses DIR/audit.log)")
	}
	if cfg.Audit.Key == "" {
		return nil, errors.New("config: audit.key is required: the alias of the AUDIT key on the token that signs the audit log's checkpoints (docs/operations.md \"The audit key\")")
	}
	pin, err := cfg.Token.PIN()
	if err != nil {
		return nil, err
	}
	d := &instance{o: o, cfg: cfg, log: log}
	d.ks, err = openStore(ctx, keystore.Config{
		ModulePath:  cfg.Token.Module,
		TokenLabel:  cfg.Token.Label,
		TokenSerial: cfg.Token.Serial,
		Slot:        cfg.Token.Slot,
		PIN:         pin,
		MaxSessions: cfg.Token.MaxSessions,
		CacheTTL:    cfg.Token.CacheTTL,
		Logger:      log,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("open token: %w", err)
	}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	ks := d.ks
	if o.Dev {
		// Before the audit log: the dev audit key is one of these.
		if err := devmode.Provision(ctx, ks, o.DevDir, o.Now()); err != nil {
			return nil, fmt.Errorf("dev keys: %w", err)
		}
	}
	// The audit log opens before anything is served: a log that cannot be
	// written, or does not match the token's last checkpoint, stops pecetd
	// at start-up rather than failing every call later.
	al, err := audit.Open(audit.Options{Now: o.Now, File: cfg.Audit.File, Sync: audit.SyncPolicy(cfg.Audit.Sync), FlushInterval: cfg.Audit.FlushInterval, MaxBytes: cfg.Audit.MaxBytes, Mirror: log, MirrorLevel: audit.MirrorLevel(cfg.Audit.Mirror),
		Checkpoint: &audit.CheckpointOptions{
			Key: auditTokenKey(ks, cfg.Audit.Key), State: ks, Interval: cfg.Audit.CheckpointInterval, StartAfterBreak: o.AuditNewLog,
			OnError: func(err error) { log.Error("audit checkpoint not made; the next one covers its lines", "err", err) },
		}})
	if errors.Is(err, audit.ErrResume) {
		return nil, fmt.Errorf("audit log: %w; check it with `pecet audit verify --cert AUDIT-KEY.pem FILE...`, then start once with --audit-new-log to move it aside and begin a new log (docs/operations.md \"A refused resume\")", err)
	}
	if errors.Is(err, keystore.ErrKeyNotFound) {
		return nil, fmt.Errorf("audit key %q is not on the token: create it with `pecetd --config FILE --init-audit-key > audit.pem` (docs/operations.md \"The audit key\"): %w", cfg.Audit.Key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("audit log (key %q): %w", cfg.Audit.Key, err)
	}
	d.al = al
	if err := al.Write(audit.Event{Phase: audit.PhaseStart}); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	// What an operator checks after pointing pecetd at a new HSM: which
	// token it chose and which mechanisms that token lists.
	ti, caps := ks.Token(), ks.Capabilities()
	log.Info("token open", "slot", ti.Slot, "label", ti.Label, "serial", ti.Serial,
		"manufacturer", ti.Manufacturer, "model", ti.Model, "sessions", ti.Sessions,
		"rsa_pkcs1", caps.RSAPKCS1v15, "rsa_pss", caps.RSAPSS, "rsa_oaep", caps.RSAOAEP,
		"rsa_raw", caps.RSARaw, "ecdsa", caps.ECDSA)
	m := metrics.New(ks.PoolStats)
	m.AuditDisk(cfg.Audit.File)
	d.rl = &reloader{o: o, log: log, ks: ks, al: al, m: m, now: o.Now}
	if o.Dev {
		for _, k := range devmode.Keys {
			d.rl.devRequired = append(d.rl.devRequired, k.Alias)
		}
	}
	if d.st, err = d.rl.build(ctx, cfg, nil); err != nil {
		return nil, err
	}
	m.WatchTrustedLists(d.rl.trustedLists, o.Now)
	if d.tlsConf, err = serverTLS(cfg.GRPC.TLS); err != nil {
		return nil, err
	}
	d.tlsConf.Time = o.Now // client certificates expire by the same clock
	if err := hookClientCRL(cfg.GRPC.TLS, d.tlsConf, al, log); err != nil {
		return nil, err
	}
	st := d.st
	d.srv = server.New(server.Deps{
		TSA:             st.live.TSA,
		TSACertificates: st.live.TSACertificates,
		RSACheckEvery:   cfg.Token.RSACheckEvery,
		Keys:            ks,
		KeyAdmin:        ks,
		Requests:        ks,
		Validator:       st.live.Validator,
		Policies:        st.live.Policies,
		Auth:            st.live.Auth,
		Audit:           al,
		KeyPolicy:       cfg.Keys,
		Metrics:         m,
		Log:             log,
		MaxMessageBytes: cfg.GRPC.MaxMessageBytes,
		CMSLimits:       signer.Limits{MaxDepth: cfg.Limits.CMSMaxDepth, MaxCertificates: cfg.Limits.CMSMaxCertificates},
		Limiter:         ratelimit.NewBounded(cfg.Limits.RatePerClient, cfg.Limits.Burst, maxRateIdentities, o.Now),
		HTTP:            cfg.HTTP,
		GRPC:            cfg.GRPC,
		RequiredKeys:    st.live.RequiredKeys,
		Envelope:        envelope.Limits{MaxRecipients: cfg.Envelope.MaxRecipients, MaxBody: cfg.Envelope.MaxBodyBytes, MaxDepth: cfg.Limits.CMSMaxDepth, MaxStream: cfg.Envelope.StreamMaxBytes},
		OAEP:            envelope.OAEPMode(cfg.Token.OAEP),
		Now:             o.Now,
	})
	return d, nil
}

// serve opens the listeners, serves gRPC and HTTP, runs the background
// loops and reloads (SIGHUP), and on ctx's end (SIGTERM) or a server's
// failure drains and stops the servers. The token and the audit log stay
// open: Run closes them after serve returns.
func serve(ctx context.Context, d *instance) error {
	o, cfg, log, srv := d.o, d.cfg, d.log, d.srv
	grpcLn, err := net.Listen("tcp", cfg.GRPC.Addr)
	if err != nil {
		return fmt.Errorf("gRPC listener: %w", err)
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		grpcLn.Close()
		return fmt.Errorf("HTTP listener: %w", err)
	}
	ep := Endpoints{GRPC: grpcLn.Addr().String(), HTTP: httpLn.Addr().String()}
	g := srv.GRPC(d.tlsConf)
	h := srv.HTTPServer()
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(grpcLn) }()
	go func() { errc <- h.Serve(httpLn) }()
	// The TSA's clock guard and the trusted lists' refresh loops run under
	// bg until shutdown; a reload replaces them (reload.go).
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	d.rl.start(bg, srv, d.st)
	srv.SetServing(true)
	// The pid and endpoints files first: whoever waits for "pecetd
	// serving" or systemd's READY may read them at once.
	ep.PID = os.Getpid()
	if o.PIDFile != "" {
		//nolint:gosec // a pid file is public by convention (pecetd reload and service managers read it)
		if err := os.WriteFile(o.PIDFile, fmt.Appendf(nil, "%d\n", ep.PID), 0o644); err != nil {
			log.Warn("cannot write the pid file", "file", o.PIDFile, "err", err)
		}
		defer os.Remove(o.PIDFile)
	}
	if o.Dev {
		if err := writeEndpoints(o.DevDir, ep); err != nil {
			log.Warn("cannot write endpoints file", "err", err)
		}
		defer os.Remove(filepath.Join(o.DevDir, AddrFile))
	}
	log.Info("pecetd serving", "grpc", ep.GRPC, "http", ep.HTTP, "dev", o.Dev, "version", version.Get().String())
	// Under systemd (Type=notify) this is the moment the unit counts as
	// started: the token is logged in and both listeners accept.
	if _, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		log.Warn("cannot notify systemd", "err", err)
	}
	if o.Dev {
		banner(o.Out, o.DevDir, ep)
	}

serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case <-o.Reload:
			// Refusals are logged, counted and audited by Reload.
			_ = d.rl.Reload(ctx, "SIGHUP")
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve: %w", err)
			}
			break serve
		}
	}
	log.Info("shutting down: draining in-flight calls", "grace", cfg.ShutdownGrace.String())
	_, _ = sdnotify.Notify(sdnotify.Stopping)
	srv.Shutdown()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownGrace):
		log.Warn("grace period over: cancelling in-flight calls")
		g.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Shutdown(sctx)
	log.Info("stopped")
	return nil
}

// maxRateIdentities bounds the gRPC rate limiter's table: denied callers
// (any certificate the client CA issued) are limited before their denial
// is audited, and their identities are theirs to choose.
const maxRateIdentities = 10000

// buildTSA makes the time-stamping authority from config, checks its key
// and certificate (pecetd refuses to start otherwise, saying which), and
// reads the configured TSA certificates. nil when no TSA is configured.
func buildTSA(ctx context.Context, c *config.TSA, rsaCheckEvery int, ks *keystore.Store, now func() time.Time) (*tsa.Authority, []*x509.Certificate, *tsa.ClockGuard, error) {
	if c == nil {
		return nil, nil, nil, nil
	}
	var hashes []crypto.Hash
	for _, h := range c.Hashes {
		hashes = append(hashes, map[string]crypto.Hash{"sha256": crypto.SHA256, "sha384": crypto.SHA384, "sha512": crypto.SHA512}[h])
	}
	var accepted []asn1.ObjectIdentifier
	for _, p := range c.AcceptedPolicies {
		accepted = append(accepted, server.ParseOID(p))
	}
	var guard *tsa.ClockGuard
	if r := c.TimeReference; r != nil {
		var ref tsa.Reference = tsa.HTTPDate{URL: r.HTTPDateURL}
		if r.OffsetFile != "" {
			ref = tsa.OffsetFile{Path: r.OffsetFile, MaxAge: 4 * r.Interval}
		}
		guard = &tsa.ClockGuard{Ref: ref, Accuracy: c.Accuracy, MaxAge: 4 * r.Interval, Now: now}
	}
	a, err := tsa.New(tsa.Config{
		Key:              server.TSAKey(ks, c.Key),
		Policy:           server.ParseOID(c.Policy),
		AcceptedPolicies: accepted,
		Accuracy:         c.Accuracy,
		Hashes:           hashes,
		IncludeTSAName:   *c.IncludeTSAName,
		Clock:            guard,
		RSACheckEvery:    rsaCheckEvery,
		Now:              now,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tsa: %w", err)
	}
	if err := a.Check(ctx); err != nil {
		return nil, nil, nil, fmt.Errorf("TSA key %q: %w", c.Key, err)
	}
	certs, err := pki.ReadCertificates(c.Certificates...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("tsa.certificates: %w", err)
	}
	return a, certs, guard, nil
}

// openStore opens the token. A build with -tags faultinject (the soak's
// pecetd, never a release) replaces it with one that injects token faults
// on a schedule: faultinject.go.
var openStore = func(ctx context.Context, cfg keystore.Config, _ *slog.Logger) (*keystore.Store, error) {
	return keystore.Open(ctx, cfg)
}

// applyFlags makes the command-line flags win over the config.
func applyFlags(cfg *config.Config, o Options) {
	if o.GRPCAddr != "" {
		cfg.GRPC.Addr = o.GRPCAddr
	}
	if o.HTTPAddr != "" {
		cfg.HTTP.Addr = o.HTTPAddr
	}
}

func loadConfig(o Options) (*config.Config, error) {
	if o.Dev {
		return devmode.Prepare(o.DevDir, o.Now())
	}
	if o.ConfigPath == "" {
		return nil, errors.New("no configuration: pass --config FILE, or --dev for the local dev default")
	}
	return config.Load(o.ConfigPath)
}

func serverTLS(t config.TLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	pool, err := pki.ReadPool(t.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// clientAuth pins each client to its issuer (authz.Load), read from the
// client CA file (docs/security.md, "Client identities"). A reload builds
// it anew.
func clientAuth(t config.TLS, clients []config.Client) (*authz.Authorizer, error) {
	cas, err := pki.ReadCertificates(t.ClientCA)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	auth, err := authz.Load(clients, cas)
	if err != nil {
		return nil, fmt.Errorf("clients: %w", err)
	}
	return auth, nil
}

// hookClientCRL, with grpc.tls.client_crl, refuses revoked client
// certificates in the handshake, each refusal an audit "denied" line
// (docs/security.md, "Client identities"). TLS settings need a restart.
func hookClientCRL(t config.TLS, tc *tls.Config, al *audit.Log, log *slog.Logger) error {
	if t.ClientCRL == "" {
		return nil
	}
	cas, err := pki.ReadCertificates(t.ClientCA)
	if err != nil {
		return fmt.Errorf("client CA: %w", err)
	}
	crl, err := authz.LoadCRL(t.ClientCRL, cas, log, func(identity string, err error) {
		log.Warn("denied", "method", "TLS handshake", "caller", identity, "err", err)
		ev := audit.Event{Phase: audit.PhaseDenied, Caller: identity, RPC: "TLS handshake", Outcome: audit.OutcomeDenied, Code: "Unauthenticated"}
		if werr := al.Write(ev); werr != nil {
			log.Error("audit log cannot be written", "err", werr)
		}
	})
	if err != nil {
		return fmt.Errorf("grpc.tls.client_crl: %w", err)
	}
	tc.VerifyConnection = crl.VerifyConnection
	return nil
}

func writeEndpoints(dir string, ep Endpoints) error {
	b, err := json.Marshal(ep)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, AddrFile), append(b, '\n'), 0o644) //nolint:gosec // the addresses are public; pecet reads them as any user
}

func banner(w io.Writer, dir string, ep Endpoints) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, `
pecetd --dev is serving
  gRPC (mTLS):  %s
  HTTP:         http://%s/healthz  /readyz  /metrics  POST /tsa (RFC 3161)
  dev folder:   %s  (token, dev CA ca.pem, role certificates, pecet.yaml)
  keys:         client-sign (SIGN), gateway-decrypt (DECRYPT), tsa (TIMESTAMP), audit (AUDIT)
  audit log:    %s  (pecet audit verify --cert %s FILE)

Try, in another terminal:
  echo '<PRIHL/>' > filing.xml
  pecet sign --key client-sign --in filing.xml --out filing.p7s
  pecet verify --in filing.p7s --content filing.xml
  pecet keys list
  pecet timestamp --in filing.xml --out filing.tsr --cert
  pecet timestamp verify --in filing.tsr --data filing.xml

`, ep.GRPC, ep.HTTP, dir, filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.pem"))
}
