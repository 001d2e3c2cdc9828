// Package config reads pecetd's YAML configuration strictly: an unknown key is
// an error, and the result is validated before anything starts.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("config: invalid")

// Defaults (README.md "Configuration", docs/api.md).
const (
	DefaultGRPCAddr = "127.0.0.1:7443"
	DefaultHTTPAddr = "127.0.0.1:7080"
	// DefaultMaxMessageBytes fits a 20 MiB body (the current ISDS limit)
	// plus protobuf framing.
	DefaultMaxMessageBytes = 24 << 20
	DefaultMaxSessions     = 16
	DefaultShutdownGrace   = 20 * time.Second
	// DefaultAuditFlushInterval: audit.sync: begin fsyncs end lines at
	// most this long after they were written.
	DefaultAuditFlushInterval = 100 * time.Millisecond
	// DefaultAuditCheckpointInterval: a signed checkpoint a minute.
	DefaultAuditCheckpointInterval = time.Minute
	// DefaultMaxRecipients bounds the recipients of one CMS message.
	DefaultMaxRecipients = 16
	// DefaultMaxBodyBytes is the current ISDS message limit.
	DefaultMaxBodyBytes = 20 << 20
	// DefaultStreamMaxBytes bounds one EncryptStream or DecryptStream.
	DefaultStreamMaxBytes = 1 << 30
)

// Config is pecetd's whole configuration.
type Config struct {
	GRPC     GRPC     `yaml:"grpc"`
	HTTP     HTTP     `yaml:"http"`
	Token    Token    `yaml:"token"`
	Trust    Trust    `yaml:"trust"`
	Envelope Envelope `yaml:"envelope"`
	Clients  []Client `yaml:"clients"`
	Limits   Limits   `yaml:"limits"`
	// Policies are the named validation policies (README.md "Certificate policy");
	// DefaultPolicy names the one used when a request names none. Without
	// policies, trust.anchors make a policy named "default".
	Policies      map[string]Policy `yaml:"policies"`
	DefaultPolicy string            `yaml:"default_policy"`
	// TSA is the RFC 3161 time-stamping authority; absent means none.
	TSA   *TSA  `yaml:"tsa"`
	Audit Audit `yaml:"audit"`
	Keys  Keys  `yaml:"keys"`
	// Fetch are the rules for fetching CRLs and OCSP responses
	// (docs/security.md "Fetching CRLs and OCSP responses").
	Fetch Fetch `yaml:"fetch"`
	// ShutdownGrace is how long in-flight calls may finish after SIGTERM.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// GRPC is the gRPC listener.
type GRPC struct {
	Addr string `yaml:"addr"`
	TLS  TLS    `yaml:"tls"`
	// MaxMessageBytes bounds a request or response (ResourceExhausted above).
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MaxConcurrentStreams bounds the calls in flight on one connection
	// (default 128; more wait in the client).
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// StreamIdleTimeout ends an EncryptStream or DecryptStream that has
	// neither received nor sent a message for this long (default 60s)
	// with DeadlineExceeded.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout"`
	// Keepalive: server pings, connection idle and age limits, and how
	// often clients may ping (net.go has the defaults).
	Keepalive GRPCKeepalive `yaml:"keepalive"`
}

// TLS is the server's certificate and the CA that client certificates must
// chain to. mTLS is always on; --dev makes these certificates itself.
type TLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
	// ClientCRL is a file of CRLs (PEM or one DER) issued by the client
	// CAs: a listed client certificate fails the TLS handshake. Read at
	// start and again when the file changes (internal/authz,
	// docs/security.md "Client identities").
	ClientCRL string `yaml:"client_crl"`
}

// HTTP is the plain HTTP listener for health, metrics and POST /tsa.
type HTTP struct {
	Addr string `yaml:"addr"`
	// Timeouts of one request (net/http.Server): its headers, the whole
	// request with its body, writing the response, and a kept-alive
	// connection's wait for the next request (defaults 5s, 10s, 30s, 60s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxBodyBytes bounds a request body (default and most 64 KiB); a
	// larger one gets 413 unread.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TSA limits the rate of POST /tsa (net.go has the defaults).
	TSA HTTPTSA `yaml:"tsa"`
}

// Token selects the PKCS#11 token. The PIN comes from a file or an
// environment variable, never from the config itself or argv.
type Token struct {
	Module string `yaml:"module"`
	Label  string `yaml:"label"`
	Serial string `yaml:"serial"`
	Slot   *uint  `yaml:"slot"`
	// URI is an RFC 7512 pkcs11: URI selecting the token instead of label,
	// serial or slot; Parse copies its attributes into those fields (every
	// one given must match), its module-path into Module and its pin-source
	// into PINFile.
	URI         string `yaml:"uri"`
	PINFile     string `yaml:"pin_file"`
	PINEnv      string `yaml:"pin_env"`
	MaxSessions int    `yaml:"max_sessions"`
	// CacheTTL bounds how long key lookups are trusted before the token is
	// read again (another replica may have rotated a key).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// RequiredKeys are aliases that must be on the token for pecetd to be
	// ready (/readyz): a token that comes back without them is not ready.
	RequiredKeys []string `yaml:"required_keys"`
	// OAEP says where RSA-OAEP padding is removed when decrypting: "token"
	// (CKM_RSA_PKCS_OAEP; fails for hashes the token lacks, as SoftHSM 2.6
	// lacks SHA-256), "raw" (CKM_RSA_X_509 on the token, constant-time
	// unpadding in pecet) or "auto" (token when it supports the hash, else
	// raw; the default). PKCS#1 v1.5 is always raw (implicit rejection).
	OAEP string `yaml:"oaep"`
	// RSACheckEvery: pecet verifies one in RSACheckEvery of the token's
	// RSA signatures before handing them out (default 1: every one), the
	// countermeasure against RSA-CRT faults, where one faulty signature
	// reveals the key. Raise it (64) only for a token that verifies its
	// own CRT results, as SoftHSM on OpenSSL does and certified HSMs
	// document; the check costs pecet ≈50–70 µs of CPU a signature.
	RSACheckEvery int `yaml:"rsa_check_every"`
}

// Envelope bounds EnvelopeService.
type Envelope struct {
	// MaxRecipients bounds the recipients of one message, written or read
	// (default 16).
	MaxRecipients int `yaml:"max_recipients"`
	// MaxBodyBytes bounds the data Encrypt takes (default 20 MiB, the
	// current ISDS limit).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// StreamMaxBytes bounds one EncryptStream (its data) or DecryptStream
	// (its CMS input) (default 1 GiB); above it ResourceExhausted. Memory
	// per stream does not grow with it (O(64 KiB) plus one request): it
	// bounds the time and token-free CPU one call may take.
	StreamMaxBytes int64 `yaml:"stream_max_bytes"`
}

// Limits bound what one request or one client may cost. Each is checked
// before the work it guards.
type Limits struct {
	// RatePerClient is the requests per second one client identity may
	// make (a token bucket per identity); above it ResourceExhausted.
	// A batch call costs one request per item (docs/security.md "Batch
	// calls and the rate limit"). 0 means no limit.
	RatePerClient float64 `yaml:"rate_per_client"`
	// Burst is the bucket's size: how many requests a client may make at
	// once after being idle (default: the rate rounded up, at least 1),
	// and so the most items one batch call may carry (InvalidArgument
	// above it).
	Burst int `yaml:"burst"`
	// CMSMaxDepth bounds the ASN.1 nesting of CMS input (default 32; CMS
	// with certificates needs about 12). Deep BER nesting is how hostile
	// input makes a parser allocate without bound.
	CMSMaxDepth int `yaml:"cms_max_depth"`
	// CMSMaxCertificates bounds the certificates in one CMS message, and so
	// the length of a chain a client can make pecet build (default 32).
	CMSMaxCertificates int `yaml:"cms_max_certificates"`
	// MemoryLimitMB is a soft limit on pecetd's memory in MiB
	// (runtime/debug.SetMemoryLimit, as GOMEMLIMIT): near it the garbage
	// collector runs more often instead of letting the heap grow to twice
	// what is live, which is most of the peak under concurrent large
	// bodies (docs/performance.md). Soft: no allocation fails because of
	// it; the collector's CPU is capped at about half, so a limit below
	// what is live costs CPU, not errors. 0 (the default) leaves the
	// runtime's own setting (GOMEMLIMIT, else none).
	MemoryLimitMB int `yaml:"memory_limit_mb"`
}

// Trust lists the trust anchors Verify judges signer chains against.
type Trust struct {
	Anchors []string `yaml:"anchors"`
}

// Policy is one named validation policy.
type Policy struct {
	Description string `yaml:"description"`
	// Anchors are PEM files of trust anchors.
	Anchors     []string     `yaml:"anchors"`
	TrustedList *TrustedList `yaml:"trusted_list"`
	// Intermediates are PEM files of CA certificates offered to path
	// building.
	Intermediates []string   `yaml:"intermediates"`
	Algorithms    Algorithms `yaml:"algorithms"`
	// Purposes override the key usage (any of) and EKU (any of) a leaf
	// needs per purpose: signing, encryption, timestamping.
	Purposes map[string]PurposeRule `yaml:"purposes"`
	// RequiredPolicies are certificate policy OIDs; the path must be valid
	// for one of them (e.g. 0.4.0.194112.1.2, QCP-n-qscd).
	RequiredPolicies []string `yaml:"required_policies"`
	// RequiredQCStatements: compliance, sscd, esign, eseal, web.
	RequiredQCStatements []string   `yaml:"required_qc_statements"`
	Revocation           Revocation `yaml:"revocation"`
	// ClockTolerance widens validity periods and CRL freshness.
	ClockTolerance time.Duration `yaml:"clock_tolerance"`
	// AllowOverrides lists what a request may override: revocation (a
	// weaker mode), anchors, crls. Absent: [crls]; [] allows none.
	AllowOverrides *[]string `yaml:"allow_overrides"`
}

// TrustedList is an ETSI TS 119 612 list, from a file or an https:// URL,
// and the certificate(s) its signature must verify with (PEM): Signer, or
// the EU list of lists (LOTL) with LOTLSigner and Territory, which names
// the list's signers (docs/operations.md "Trusted lists").
type TrustedList struct {
	File string `yaml:"file"`
	// URL is where the list is fetched from instead of File (https://
	// only; the signature, not the transport, makes it trusted). With LOTL
	// both may be empty: the list is fetched from where the LOTL points.
	URL    string `yaml:"url"`
	Signer string `yaml:"signer"`
	// LOTL is the EU list of lists (a file or an https:// URL) whose
	// signature must verify with LOTLSigner (PEM, from the Official
	// Journal), directly or through the pivot LOTLs it names; its pointer
	// to Territory's list gives the list's signers instead of Signer.
	LOTL       string `yaml:"lotl"`
	LOTLSigner string `yaml:"lotl_signer"`
	Territory  string `yaml:"territory"`
	// Refresh reloads the list this often (0: only on SIGHUP or `pecetd
	// reload`); a list that fails (signature, parse, older sequence
	// number, past its NextUpdate) leaves the one in force
	// (docs/operations.md "Trusted lists").
	Refresh time.Duration `yaml:"refresh"`
	// Timeout bounds fetching URL (default 30s).
	Timeout time.Duration `yaml:"timeout"`
	// Grace is how long past the list's NextUpdate it is still relied on
	// (default 0: a list due to be replaced makes paths to its anchors
	// INDETERMINATE until a current list is loaded).
	Grace time.Duration `yaml:"grace"`
}

// Algorithms are the algorithm rules of a policy.
type Algorithms struct {
	// Suite is an ETSI TS 119 312 suitability file (XML).
	Suite      string   `yaml:"suite"`
	MinRSABits int      `yaml:"min_rsa_bits"`
	MinECBits  int      `yaml:"min_ec_bits"`
	Hashes     []string `yaml:"hashes"` // SHA256, SHA384, SHA512, SHA3-256, SHA3-384, SHA3-512
}

// PurposeRule lists key usage and EKU names.
type PurposeRule struct {
	KeyUsage []string `yaml:"key_usage"`
	EKU      []string `yaml:"eku"`
}

// Revocation configures revocation checking.
type Revocation struct {
	Mode      string   `yaml:"mode"` // require, prefer (default), off
	CRLs      []string `yaml:"crls"`
	FetchCRLs bool     `yaml:"fetch_crls"`
	OCSP      bool     `yaml:"ocsp"`
	// OCSPMaxAge bounds the age (thisUpdate) of OCSP responses without
	// nextUpdate (default 1h).
	OCSPMaxAge time.Duration `yaml:"ocsp_max_age"`
	// OCSPNonce: send a nonce and require its echo (default true); false
	// for responders that serve pre-produced responses (RFC 5019).
	OCSPNonce *bool `yaml:"ocsp_nonce"`
	// Timeout bounds one CRL or OCSP fetch.
	Timeout time.Duration `yaml:"timeout"`
}

// Fetch says where pecetd may fetch CRLs and OCSP responses. Fetching is
// only ever done for certificates that chain to a policy's own anchors,
// never for anchors a request brings.
type Fetch struct {
	// Schemes allowed: http (the default), https.
	Schemes []string `yaml:"schemes"`
	// Hosts, when set, are the only hosts asked: "host" (any port),
	// "host:port", or ".example.cz" for every host under a domain.
	Hosts []string `yaml:"hosts"`
	// MaxRedirects followed, each to the same scheme and host:port only
	// (default 3; -1: none).
	MaxRedirects int `yaml:"max_redirects"`
}

// FetchSchemes are the URL schemes fetch.schemes may allow.
var FetchSchemes = []string{"http", "https"}

// TSA configures the time-stamping authority (RFC 3161) behind POST /tsa,
// TimestampService and `pecet sign --timestamp`.
type TSA struct {
	// Key is the alias of the TIMESTAMP key; its primary version signs.
	Key string `yaml:"key"`
	// Policy is the TSA policy OID of tokens whose request names none.
	Policy string `yaml:"policy"`
	// AcceptedPolicies may also be requested.
	AcceptedPolicies []string `yaml:"accepted_policies"`
	// Accuracy is declared in every token (default 1s) and bounds the
	// offset the time reference may find.
	Accuracy time.Duration `yaml:"accuracy"`
	// Ordering must be false: replicas cannot order their tokens.
	Ordering bool `yaml:"ordering"`
	// Hashes accepted in requests: sha256, sha384, sha512 (default all).
	Hashes []string `yaml:"hashes"`
	// IncludeTSAName writes the TSA's subject into the tokens (default true).
	IncludeTSAName *bool `yaml:"include_tsa_name"`
	// Certificates are PEM files of TSA certificates, for verifying tokens
	// that carry none (besides the TSA key's own certificate).
	Certificates []string `yaml:"certificates"`
	// TimeReference, when set, is checked regularly; while the clock is
	// off by more than the accuracy, requests get timeNotAvailable and
	// /readyz fails.
	TimeReference *TimeReference `yaml:"time_reference"`
}

// TimeReference is what the clock is compared with: exactly one of an
// HTTP server's Date header and a file holding the offset in seconds.
type TimeReference struct {
	HTTPDateURL string        `yaml:"http_date_url"`
	OffsetFile  string        `yaml:"offset_file"`
	Interval    time.Duration `yaml:"interval"` // default 30s
}

// Client maps an identity (certificate subject CN or URI SAN) to roles and
// to the key aliases it may use ("*" for all).
//
// A name alone is not an identity: any CA in grpc.tls.client_ca could
// issue a certificate with it. So the client is pinned to the CA that
// issues its certificate: Issuer (a PEM file with that CA's certificate)
// or IssuerSPKISHA256 (the SHA-256 of that CA's SubjectPublicKeyInfo, hex);
// without either, the issuer must be the one certificate of
// grpc.tls.client_ca (a client_ca with several needs a pin per client).
// KeySPKISHA256 optionally pins the client's own key. See internal/authz
// and docs/security.md "Client identities".
type Client struct {
	Identity         string   `yaml:"identity"`
	Roles            []string `yaml:"roles"`
	Keys             []string `yaml:"keys"`
	Issuer           string   `yaml:"issuer"`
	IssuerSPKISHA256 string   `yaml:"issuer_spki_sha256"`
	KeySPKISHA256    string   `yaml:"key_spki_sha256"`
}

// ParseSHA256 decodes a SHA-256 fingerprint in hex, with or without
// colons, in either case (as openssl and sha256sum print them).
func ParseSHA256(s string) ([32]byte, bool) {
	var out [32]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != len(out) {
		return out, false
	}
	copy(out[:], b)
	return out, true
}

// Audit is the audit log (internal/audit). pecetd refuses to start without
// a file outside dev mode (dev mode: DIR/audit.log).
type Audit struct {
	// File is the log; each pecetd process needs its own (it is locked).
	File string `yaml:"file"`
	// Sync is the fsync policy: "event" (default: a key operation's begin
	// and end lines are durable before its result leaves the service),
	// "begin" (write-ahead: the begin line is durable before the result
	// leaves, its fsync runs while the token works; the end line is
	// durable at most FlushInterval later) or "none" (page cache;
	// battery-backed storage).
	Sync string `yaml:"sync"`
	// Mirror selects the audit lines also written to stderr (slog JSON,
	// message "audit") for shipping and alerting: "none", "denied"
	// (denials and the log's start, stop and signed lines), "errors"
	// (default: also failed calls and key lifecycle changes) or "all"
	// (every line). The file always gets every line.
	Mirror string `yaml:"mirror"`
	// FlushInterval: with sync: begin, how long an end line may wait for
	// its fsync (default 100ms; at most 1s).
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBytes rotates the file at this size (FILE.1, FILE.2, …); 0 never.
	MaxBytes int64 `yaml:"max_bytes"`
	// Key is the alias of the AUDIT key on the token that signs the log's
	// checkpoints; required outside dev mode (docs/security.md "Audit
	// log").
	Key string `yaml:"key"`
	// CheckpointInterval: how often a signed checkpoint is written
	// (default 1m; also at stop and rotation). `pecet audit verify
	// --max-age` should allow at least this much.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// auditKeyRE is keystore's alias rule (keystore.CheckAlias).
var auditKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Keys configures the officers' key management.
type Keys struct {
	// ExpiryWarningDays: `keys show` warns when the primary version's
	// certificate expires within this many days (default 30).
	ExpiryWarningDays int `yaml:"expiry_warning_days"`
	// ArchiveRenewalWarningDays: ArchiveService.Renew (`pecet archive
	// renew`) warns for a record whose last time-stamp's TSA certificate
	// expires within this many days (default 90; docs/archive.md).
	ArchiveRenewalWarningDays int `yaml:"archive_renewal_warning_days"`
	// DualControl lists what needs a second officer's approval.
	DualControl DualControl `yaml:"dual_control"`
}

// DualControl: for aliases matching one of Aliases (path.Match globs, e.g.
// "cssz-*"), the listed operations only take effect once a second, different
// officer approves the request the first one made.
type DualControl struct {
	Aliases []string `yaml:"aliases"`
	// Operations: create, rotate, set-primary, destroy (default: create,
	// set-primary, destroy).
	Operations []string `yaml:"operations"`
	// RequestTTL: an unapproved request expires after this long (default 24h).
	RequestTTL time.Duration `yaml:"request_ttl"`
}

// Dual-control operation names.
const (
	OpCreate     = "create"
	OpRotate     = "rotate"
	OpSetPrimary = "set-primary"
	OpDestroy    = "destroy"
)

// Defaults for the keys section.
const (
	DefaultExpiryWarningDays = 30
	// DefaultArchiveRenewalWarningDays: a quarter's notice to renew.
	DefaultArchiveRenewalWarningDays = 90
	DefaultRequestTTL                = 24 * time.Hour
)

// Roles a client may hold.
var validRoles = map[string]bool{"client": true, "gateway": true, "officer": true}

// Load reads and validates a config file. Relative paths in it (TLS files,
// the PIN file, trust anchors, a module path with a slash) are relative to
// the file's directory, not to pecetd's working directory, so a config and
// its files can move together.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// A config file has no reason to be large; bound what we parse.
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%w: %s is larger than 1 MiB", ErrInvalid, path)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.ResolvePaths(abs)
	return c, nil
}

// ResolvePaths makes the config's relative file paths relative to dir.
// Every path-valued field belongs here: a relative path that pecetd
// resolves against its working directory works by accident under a shell
// and fails under systemd.
func (c *Config) ResolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.GRPC.TLS.Cert)
	abs(&c.GRPC.TLS.Key)
	abs(&c.GRPC.TLS.ClientCA)
	abs(&c.GRPC.TLS.ClientCRL)
	for i := range c.Clients {
		abs(&c.Clients[i].Issuer)
	}
	abs(&c.Token.PINFile)
	abs(&c.Audit.File)
	// A bare library name ("libsofthsm2.so") is for the dynamic loader's
	// search path; only a path with a slash is a file path.
	if strings.Contains(c.Token.Module, "/") {
		abs(&c.Token.Module)
	}
	for i := range c.Trust.Anchors {
		abs(&c.Trust.Anchors[i])
	}
	for name, p := range c.Policies {
		for _, list := range [][]string{p.Anchors, p.Intermediates, p.Revocation.CRLs} {
			for i := range list {
				abs(&list[i])
			}
		}
		if p.TrustedList != nil {
			abs(&p.TrustedList.File)
			abs(&p.TrustedList.Signer)
			abs(&p.TrustedList.LOTLSigner)
			if !strings.HasPrefix(p.TrustedList.LOTL, "https://") {
				abs(&p.TrustedList.LOTL)
			}
		}
		abs(&p.Algorithms.Suite)
		c.Policies[name] = p
	}
	if c.TSA != nil {
		for i := range c.TSA.Certificates {
			abs(&c.TSA.Certificates[i])
		}
		if r := c.TSA.TimeReference; r != nil {
			abs(&r.OffsetFile)
		}
	}
}

// Parse decodes YAML strictly (unknown keys are errors), applies defaults and
// validates.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := c.Token.applyURI(); err != nil {
		return nil, fmt.Errorf("%w: token.uri: %w", ErrInvalid, err)
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	if c.GRPC.Addr == "" {
		c.GRPC.Addr = DefaultGRPCAddr
	}
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = DefaultHTTPAddr
	}
	if c.GRPC.MaxMessageBytes == 0 {
		c.GRPC.MaxMessageBytes = DefaultMaxMessageBytes
	}
	c.applyNetDefaults()
	if c.Token.MaxSessions == 0 {
		c.Token.MaxSessions = DefaultMaxSessions
	}
	if c.Token.RSACheckEvery == 0 {
		c.Token.RSACheckEvery = 1
	}
	if c.Token.OAEP == "" {
		c.Token.OAEP = "auto"
	}
	if c.Envelope.MaxRecipients == 0 {
		c.Envelope.MaxRecipients = DefaultMaxRecipients
	}
	if c.Envelope.StreamMaxBytes == 0 {
		c.Envelope.StreamMaxBytes = DefaultStreamMaxBytes
	}
	if c.Envelope.MaxBodyBytes == 0 {
		c.Envelope.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Audit.Sync == "" {
		c.Audit.Sync = "event"
	}
	if c.Audit.Mirror == "" {
		c.Audit.Mirror = "errors"
	}
	if c.Audit.FlushInterval == 0 {
		c.Audit.FlushInterval = DefaultAuditFlushInterval
	}
	if c.Audit.CheckpointInterval == 0 {
		c.Audit.CheckpointInterval = DefaultAuditCheckpointInterval
	}
	if c.Keys.ExpiryWarningDays == 0 {
		c.Keys.ExpiryWarningDays = DefaultExpiryWarningDays
	}
	if c.Keys.ArchiveRenewalWarningDays == 0 {
		c.Keys.ArchiveRenewalWarningDays = DefaultArchiveRenewalWarningDays
	}
	if len(c.Keys.DualControl.Operations) == 0 {
		c.Keys.DualControl.Operations = []string{OpCreate, OpSetPrimary, OpDestroy}
	}
	if c.Keys.DualControl.RequestTTL == 0 {
		c.Keys.DualControl.RequestTTL = DefaultRequestTTL
	}
	if t := c.TSA; t != nil {
		if t.Accuracy == 0 {
			t.Accuracy = time.Second
		}
		if t.Hashes == nil {
			t.Hashes = []string{"sha256", "sha384", "sha512"}
		}
		if t.IncludeTSAName == nil {
			yes := true
			t.IncludeTSAName = &yes
		}
		if r := t.TimeReference; r != nil && r.Interval == 0 {
			r.Interval = 30 * time.Second
		}
	}
	for _, p := range c.Policies {
		if tl := p.TrustedList; tl != nil && tl.Timeout == 0 {
			tl.Timeout = DefaultTrustedListTimeout
		}
	}
}

// reTerritory is a trusted list's SchemeTerritory (ISO 3166-1 alpha-2,
// "EL" and "UK" included).
var reTerritory = regexp.MustCompile(`^[A-Z]{2}$`)

// DefaultTrustedListTimeout bounds fetching a trusted list from its URL.
const DefaultTrustedListTimeout = 30 * time.Second

// MinTrustedListRefresh is the shortest trusted_list.refresh: lists are
// issued every few months at most weekly; polling more often only loads
// the publisher.
const MinTrustedListRefresh = time.Minute

// ValidOID reports whether s is a dotted object identifier whose arcs
// fit an int (what encoding/asn1 can carry).
func ValidOID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for i, p := range parts {
		if p == "" || len(p) > 18 || (len(p) > 1 && p[0] == '0') || strings.Trim(p, "0123456789") != "" {
			return false
		}
		if i == 0 && p != "0" && p != "1" && p != "2" {
			return false
		}
	}
	return true
}

func (t *TSA) validate(bad func(string, ...any)) {
	if t.Key == "" {
		bad("tsa.key (the alias of the TIMESTAMP key) is required")
	}
	if !ValidOID(t.Policy) {
		bad("tsa.policy must be a dotted OID, e.g. 1.3.6.1.4.1.<your arc>.1 (got %q)", t.Policy)
	}
	for _, p := range t.AcceptedPolicies {
		if !ValidOID(p) {
			bad("tsa.accepted_policies: %q is not a dotted OID", p)
		}
	}
	if t.Accuracy < time.Microsecond || t.Accuracy > time.Hour {
		bad("tsa.accuracy must be between 1µs and 1h")
	}
	if t.Ordering {
		bad("tsa.ordering must be false: independent replicas cannot order their tokens")
	}
	if len(t.Hashes) == 0 {
		bad("tsa.hashes must list at least one of sha256, sha384, sha512")
	}
	for _, h := range t.Hashes {
		switch h {
		case "sha256", "sha384", "sha512":
		case "sha1", "md5":
			bad("tsa.hashes: %s is broken for time-stamps (such requests get badAlg)", h)
		default:
			bad("tsa.hashes: unknown hash %q (sha256, sha384, sha512)", h)
		}
	}
	if r := t.TimeReference; r != nil {
		if (r.HTTPDateURL == "") == (r.OffsetFile == "") {
			bad("tsa.time_reference needs exactly one of http_date_url and offset_file")
		}
		if r.HTTPDateURL != "" && !strings.HasPrefix(r.HTTPDateURL, "http://") && !strings.HasPrefix(r.HTTPDateURL, "https://") {
			bad("tsa.time_reference.http_date_url must be an http:// or https:// URL")
		}
		if r.Interval < time.Second || r.Interval > time.Hour {
			bad("tsa.time_reference.interval must be between 1s and 1h")
		}
	}
}

// Validate checks the config as a whole and names the first problem.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if c.GRPC.TLS.Cert == "" || c.GRPC.TLS.Key == "" || c.GRPC.TLS.ClientCA == "" {
		bad("grpc.tls.cert, grpc.tls.key and grpc.tls.client_ca are required (mTLS)")
	}
	if c.GRPC.MaxMessageBytes < 1<<10 || c.GRPC.MaxMessageBytes > 1<<30 {
		bad("grpc.max_message_bytes must be between 1 KiB and 1 GiB")
	}
	c.validateNet(bad)
	if c.Token.Module == "" {
		bad("token.module (the PKCS#11 library path) is required")
	}
	sel := 0
	for _, set := range []bool{c.Token.Label != "", c.Token.Serial != "", c.Token.Slot != nil} {
		if set {
			sel++
		}
	}
	switch {
	case c.Token.URI != "" && sel == 0:
		bad("token.uri names no token")
	case c.Token.URI == "" && sel != 1:
		bad("exactly one of token.label, token.serial, token.slot and token.uri must be set")
	}
	if (c.Token.PINFile == "") == (c.Token.PINEnv == "") {
		bad("exactly one of token.pin_file and token.pin_env must be set")
	}
	if c.Token.MaxSessions < 1 || c.Token.MaxSessions > 1024 {
		bad("token.max_sessions must be between 1 and 1024")
	}
	if c.Limits.RatePerClient < 0 {
		bad("limits.rate_per_client must not be negative (0 means no limit)")
	}
	if c.Limits.Burst < 0 || (c.Limits.Burst > 0 && c.Limits.RatePerClient == 0) {
		bad("limits.burst must be positive and needs limits.rate_per_client")
	}
	if c.Limits.CMSMaxDepth < 0 || c.Limits.CMSMaxDepth > 256 {
		bad("limits.cms_max_depth must be between 1 and 256 (0 for the default, 32)")
	}
	if c.Token.RSACheckEvery < 1 || c.Token.RSACheckEvery > 4096 {
		bad("token.rsa_check_every must be between 1 (verify every RSA signature, the default) and 4096")
	}
	if c.Limits.MemoryLimitMB != 0 && (c.Limits.MemoryLimitMB < 64 || c.Limits.MemoryLimitMB > 1<<20) {
		bad("limits.memory_limit_mb must be 0 (none) or between 64 and 1048576 (MiB)")
	}
	if c.Limits.CMSMaxCertificates < 0 || c.Limits.CMSMaxCertificates > 1024 {
		bad("limits.cms_max_certificates must be between 1 and 1024 (0 for the default, 32)")
	}
	switch c.Token.OAEP {
	case "token", "raw", "auto":
	default:
		bad("token.oaep must be token, raw or auto")
	}
	if c.Envelope.MaxRecipients < 1 || c.Envelope.MaxRecipients > 1024 {
		bad("envelope.max_recipients must be between 1 and 1024")
	}
	if c.Envelope.MaxBodyBytes < 1 || c.Envelope.MaxBodyBytes > 1<<30 {
		bad("envelope.max_body_bytes must be between 1 and 1 GiB")
	}
	if c.Envelope.StreamMaxBytes < 1<<10 || c.Envelope.StreamMaxBytes > 1<<40 {
		bad("envelope.stream_max_bytes must be between 1 KiB and 1 TiB")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		if cl.Identity == "" {
			bad("clients[%d].identity is empty", i)
		}
		if seen[cl.Identity] {
			bad("clients[%d]: identity %q appears twice", i, cl.Identity)
		}
		seen[cl.Identity] = true
		if len(cl.Roles) == 0 {
			bad("clients[%d] (%s) has no roles", i, cl.Identity)
		}
		for _, r := range cl.Roles {
			if !validRoles[r] {
				bad("clients[%d] (%s): unknown role %q (client, gateway, officer)", i, cl.Identity, r)
			}
		}
		if cl.Issuer != "" && cl.IssuerSPKISHA256 != "" {
			bad("clients[%d] (%s): give issuer or issuer_spki_sha256, not both", i, cl.Identity)
		}
		for _, f := range [][2]string{{"issuer_spki_sha256", cl.IssuerSPKISHA256}, {"key_spki_sha256", cl.KeySPKISHA256}} {
			if _, ok := ParseSHA256(f[1]); f[1] != "" && !ok {
				bad("clients[%d] (%s): %s must be a SHA-256 in hex (64 digits; colons allowed)", i, cl.Identity, f[0])
			}
		}
	}
	c.validatePolicies(bad)
	for _, sc := range c.Fetch.Schemes {
		if !slices.Contains(FetchSchemes, sc) {
			bad("fetch.schemes: %q is not allowed (http, https)", sc)
		}
	}
	for _, h := range c.Fetch.Hosts {
		if h == "" || strings.ContainsAny(h, "/ @") {
			bad("fetch.hosts: %q: use host, host:port or .domain", h)
		}
	}
	if c.Fetch.MaxRedirects < -1 || c.Fetch.MaxRedirects > 10 {
		bad("fetch.max_redirects: %d (use -1 for none, up to 10)", c.Fetch.MaxRedirects)
	}
	if c.TSA != nil {
		c.TSA.validate(bad)
	}
	if c.Audit.Sync != "event" && c.Audit.Sync != "begin" && c.Audit.Sync != "none" {
		bad("audit.sync must be event, begin or none")
	}
	switch c.Audit.Mirror {
	case "none", "denied", "errors", "all":
	default:
		bad("audit.mirror must be none, denied, errors or all")
	}
	if c.Audit.FlushInterval < time.Millisecond || c.Audit.FlushInterval > time.Second {
		bad("audit.flush_interval must be between 1ms and 1s (the most outcome lines a machine crash may lose with sync: begin)")
	}
	if c.Audit.MaxBytes < 0 || (c.Audit.MaxBytes > 0 && c.Audit.MaxBytes < 64<<10) {
		bad("audit.max_bytes must be 0 (no rotation) or at least 65536")
	}
	if c.Audit.CheckpointInterval < time.Second || c.Audit.CheckpointInterval > time.Hour {
		bad("audit.checkpoint_interval must be between 1s and 1h (the lines a cut tail can hide)")
	}
	if c.Audit.Key != "" && !auditKeyRE.MatchString(c.Audit.Key) {
		bad("audit.key must be a key alias ([a-z0-9][a-z0-9._-]{0,63})")
	}
	if c.Keys.ExpiryWarningDays < 0 || c.Keys.ExpiryWarningDays > 3650 {
		bad("keys.expiry_warning_days must be between 0 and 3650")
	}
	if c.Keys.ArchiveRenewalWarningDays < 0 || c.Keys.ArchiveRenewalWarningDays > 3650 {
		bad("keys.archive_renewal_warning_days must be between 0 and 3650")
	}
	dc := c.Keys.DualControl
	for _, g := range dc.Aliases {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			bad("keys.dual_control.aliases: %q is not a valid glob", g)
		}
	}
	for _, op := range dc.Operations {
		switch op {
		case OpCreate, OpRotate, OpSetPrimary, OpDestroy:
		default:
			bad("keys.dual_control.operations: unknown %q (create, rotate, set-primary, destroy)", op)
		}
	}
	if dc.RequestTTL < time.Second || dc.RequestTTL > 30*24*time.Hour {
		bad("keys.dual_control.request_ttl must be between 1s and 720h")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// applyURI copies a token.uri's attributes into the selector, module and
// PIN fields; it refuses a URI given together with any of them, because two
// places saying which token to use is one too many.
func (t *Token) applyURI() error {
	if t.URI == "" {
		return nil
	}
	if t.Label != "" || t.Serial != "" || t.Slot != nil {
		return errors.New("give token.uri or token.label/serial/slot, not both")
	}
	u, err := ParsePKCS11URI(t.URI)
	if err != nil {
		return err
	}
	t.Label, t.Serial, t.Slot = u.Token, u.Serial, u.SlotID
	if u.ModulePath != "" {
		if t.Module != "" && t.Module != u.ModulePath {
			return fmt.Errorf("module-path %s differs from token.module %s", u.ModulePath, t.Module)
		}
		t.Module = u.ModulePath
	}
	if u.PINSource != "" {
		if t.PINFile != "" || t.PINEnv != "" {
			return errors.New("pin-source in the URI and token.pin_file or token.pin_env: give one")
		}
		t.PINFile = u.PINSource
	}
	return nil
}

// ErrPINFileMode: the PIN file may be read or written by group or others.
var ErrPINFileMode = errors.New("config: the PIN file is accessible to group or others")

// PIN reads the token PIN from the configured file or environment variable.
// Trailing newlines in a PIN file are dropped.
//
// A PIN file that group or others may access (any of mode 0077) is refused,
// in dev and production alike: it would hand the HSM login to every local
// account. A PIN from the environment is removed from it once read
// (os.Unsetenv, so child processes do not inherit it, and overwritten in
// the process's original environment block, which /proc/self/environ
// shows; that part is best effort). docs/security.md "Dev mode".
func (t Token) PIN() (string, error) {
	if t.PINEnv != "" {
		pin, ok := os.LookupEnv(t.PINEnv)
		if !ok || pin == "" {
			return "", fmt.Errorf("config: the PIN environment variable %s is not set", t.PINEnv)
		}
		_ = os.Unsetenv(t.PINEnv)
		scrubEnviron(t.PINEnv)
		return pin, nil
	}
	// Stat follows symbolic links: a Kubernetes Secret's file is a link
	// whose target carries defaultMode.
	st, err := os.Stat(t.PINFile)
	if err != nil {
		return "", fmt.Errorf("config: read PIN file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%w: %s has mode %04o; make it readable by pecetd's user only (chmod 600 %s, or 400)", ErrPINFileMode, t.PINFile, perm, t.PINFile)
	}
	b, err := os.ReadFile(t.PINFile)
	if err != nil {
		return "", fmt.Errorf("config: read PIN file: %w", err)
	}
	pin := strings.TrimRight(string(b), "\r\n")
	if pin == "" {
		return "", fmt.Errorf("config: PIN file %s is empty", t.PINFile)
	}
	return pin, nil
}

// Names accepted in policy blocks.
var (
	RevocationModes = []string{"", "require", "prefer", "off"}
	QCStatements    = []string{"compliance", "sscd", "esign", "eseal", "web"}
	PurposeNames    = []string{"signing", "encryption", "timestamping"}
	HashNames       = []string{"SHA256", "SHA384", "SHA512", "SHA3-256", "SHA3-384", "SHA3-512"} // policy.HashByName
	OverrideNames   = []string{"revocation", "anchors", "crls"}
)

func (c *Config) validatePolicies(bad func(string, ...any)) {
	if len(c.Policies) == 0 {
		if c.DefaultPolicy != "" && c.DefaultPolicy != "default" {
			bad("default_policy %q names no policy (policies is empty)", c.DefaultPolicy)
		}
		return
	}
	if c.DefaultPolicy == "" {
		bad("default_policy is required when policies are configured")
	} else if _, ok := c.Policies[c.DefaultPolicy]; !ok {
		bad("default_policy %q is not one of the policies", c.DefaultPolicy)
	}
	for name, p := range c.Policies {
		if name == "" || strings.ContainsAny(name, " \t/") {
			bad("policy name %q: use letters, digits and - _ .", name)
		}
		if len(p.Anchors) == 0 && p.TrustedList == nil {
			bad("policies.%s: anchors or trusted_list is required", name)
		}
		if tl := p.TrustedList; tl != nil {
			switch {
			case tl.LOTL == "" && ((tl.File == "") == (tl.URL == "") || tl.Signer == ""):
				bad("policies.%s.trusted_list: file or url (exactly one) and signer are both required (an unsigned list is never trusted), or lotl with lotl_signer and territory", name)
			case tl.LOTL != "" && (tl.Signer != "" || tl.LOTLSigner == "" || (tl.File != "" && tl.URL != "")):
				bad("policies.%s.trusted_list: with lotl, lotl_signer is required, signer is not allowed (the LOTL names the signers) and file or url at most one", name)
			case tl.LOTL != "" && !reTerritory.MatchString(tl.Territory):
				bad("policies.%s.trusted_list.territory must be the list's two-letter scheme territory (e.g. CZ) with lotl", name)
			case tl.LOTL == "" && (tl.LOTLSigner != "" || tl.Territory != ""):
				bad("policies.%s.trusted_list: lotl_signer and territory need lotl", name)
			}
			if tl.URL != "" && !strings.HasPrefix(tl.URL, "https://") {
				bad("policies.%s.trusted_list.url must be an https:// URL", name)
			}
			if strings.Contains(tl.LOTL, "://") && !strings.HasPrefix(tl.LOTL, "https://") {
				bad("policies.%s.trusted_list.lotl must be a file or an https:// URL", name)
			}
			if tl.Refresh != 0 && (tl.Refresh < MinTrustedListRefresh || tl.Refresh > 30*24*time.Hour) {
				bad("policies.%s.trusted_list.refresh must be 0 (SIGHUP only) or between 1m and 720h", name)
			}
			if tl.Timeout != 0 && (tl.Timeout < time.Second || tl.Timeout > 10*time.Minute) {
				bad("policies.%s.trusted_list.timeout must be between 1s and 10m", name)
			}
		}
		if !slices.Contains(RevocationModes, p.Revocation.Mode) {
			bad("policies.%s.revocation.mode %q: use require, prefer or off", name, p.Revocation.Mode)
		}
		for _, q := range p.RequiredQCStatements {
			if !slices.Contains(QCStatements, q) {
				bad("policies.%s.required_qc_statements: unknown %q (compliance, sscd, esign, eseal, web)", name, q)
			}
		}
		for purpose := range p.Purposes {
			if !slices.Contains(PurposeNames, purpose) {
				bad("policies.%s.purposes: unknown purpose %q (signing, encryption, timestamping)", name, purpose)
			}
		}
		for _, h := range p.Algorithms.Hashes {
			if !slices.Contains(HashNames, h) {
				bad("policies.%s.algorithms.hashes: %q is not allowed (SHA256, SHA384, SHA512, SHA3-256, SHA3-384, SHA3-512)", name, h)
			}
		}
		if p.Algorithms.MinRSABits < 0 || p.Algorithms.MinECBits < 0 || p.ClockTolerance < 0 || p.Revocation.OCSPMaxAge < 0 {
			bad("policies.%s: negative bounds", name)
		}
		if p.AllowOverrides != nil {
			for _, o := range *p.AllowOverrides {
				if !slices.Contains(OverrideNames, o) {
					bad("policies.%s.allow_overrides: unknown %q (revocation, anchors, crls)", name, o)
				}
			}
		}
		if p.TrustedList != nil && p.TrustedList.Grace < 0 {
			bad("policies.%s.trusted_list.grace must not be negative", name)
		}
	}
}

// NeedsApproval reports whether an operation on alias needs a second
// officer (dual control).
func (d DualControl) NeedsApproval(op, alias string) bool {
	if !slices.Contains(d.Operations, op) {
		return false
	}
	for _, g := range d.Aliases {
		if ok, _ := path.Match(g, alias); ok {
			return true
		}
	}
	return false
}
