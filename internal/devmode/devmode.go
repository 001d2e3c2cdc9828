// Package devmode makes pecetd's embedded default: a dev folder with a
// SoftHSM2 token, a dev CA, mTLS certificates for the server and for every
// role, and the dev keys, each certified by the dev CA. A second run reuses
// everything already there.
//
// Nothing here is fit for production: the dev CA key and the token PIN sit in
// files in the dev folder.
package devmode

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// DefaultDir is where `pecetd --dev` and `pecet` look for the dev folder.
const DefaultDir = ".pecet-dev"

// TokenLabel is the dev token's label.
const TokenLabel = "pecet-dev" //nolint:gosec // a token label, no credential

// Role certificate file names in the dev folder, by role.
// officer-2 is a second officer, so that dual control can be tried out.
var RoleFiles = map[string]string{"client": "client", "gateway": "gateway", "officer": "officer", "officer-2": "officer-2"}

// DevKey is a key the dev folder provides.
type DevKey struct {
	Alias     string
	Purpose   keystore.Purpose
	Algorithm keystore.Algorithm
	kind      devca.Kind
}

// Keys are the dev keys (README.md "Five-minute tour").
var Keys = []DevKey{
	{"client-sign", keystore.PurposeSign, keystore.RSA2048, devca.CMSSign},
	{"gateway-decrypt", keystore.PurposeDecrypt, keystore.RSA2048, devca.CMSDecrypt},
	{"tsa", keystore.PurposeTimestamp, keystore.RSA2048, devca.TSA},
	// Signs the audit log's checkpoints (audit.key); its certificate,
	// DIR/audit.pem, is what `pecet audit verify --cert` checks them with.
	{AuditKey, keystore.PurposeAudit, keystore.ECP256, devca.Audit},
}

// AuditKey is the dev audit key's alias.
const AuditKey = "audit"

// Prepare creates (or reuses) the dev folder's token, PKI and config file and
// returns the config. It sets SOFTHSM2_CONF for this process, which must
// happen before the PKCS#11 module is first loaded.
func Prepare(dir string, now time.Time) (*config.Config, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev folder: %w", err)
	}
	// MkdirAll leaves an existing folder's mode alone: a folder made by
	// hand, unpacked from an archive or made under a loose umask stays
	// readable by others, with the dev CA key and the PIN inside.
	if err := Tighten(dir); err != nil {
		return nil, fmt.Errorf("dev folder: %w", err)
	}
	module, err := softhsm.FindModule()
	if err != nil {
		return nil, err
	}
	if _, err := softhsm.Setup(dir); err != nil {
		return nil, fmt.Errorf("dev folder: SoftHSM config: %w", err)
	}
	if _, err := softhsm.EnsureEnv(dir); err != nil {
		return nil, err
	}
	pinFile := filepath.Join(dir, "pin")
	if !fileExists(pinFile) {
		pin, so := randomPIN(), randomPIN()
		if err := keystore.InitToken(module, TokenLabel, so, pin); err != nil {
			return nil, fmt.Errorf("dev folder: initialise token: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "so-pin"), []byte(so+"\n"), 0o600); err != nil {
			return nil, err
		}
		// Written last: its presence means the token is ready.
		if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	c, err := devca.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), now)
	if err != nil {
		return nil, fmt.Errorf("dev CA: %w", err)
	}
	if err := c.TLSPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), "localhost", devca.TLSServer, now); err != nil {
		return nil, err
	}
	for role, name := range RoleFiles {
		if err := c.TLSPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"), role, devca.TLSClient, now); err != nil {
			return nil, err
		}
	}
	cfgPath := filepath.Join(dir, "pecet.yaml")
	if !fileExists(cfgPath) {
		if err := os.WriteFile(cfgPath, []byte(configYAML(module)), 0o600); err != nil {
			return nil, err
		}
	}
	// Load resolves the file's relative paths against the dev folder.
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	if cfg.TSA == nil {
		// A dev folder from before the TSA existed: serve it anyway.
		cfg.TSA = DevTSA()
	}
	if cfg.Audit.File == "" {
		// A dev folder from before the audit log existed.
		cfg.Audit.File = filepath.Join(dir, "audit.log")
	}
	if cfg.Audit.Key == "" {
		// A dev folder from before signed checkpoints: Provision creates
		// the key.
		cfg.Audit.Key = AuditKey
	}
	return cfg, nil
}

// DevPolicy is the dev TSA's policy OID: OpenSSL's example policy
// (tsa_policy1 in openssl.cnf), a placeholder that says "not a real TSA".
const DevPolicy = "1.2.3.4.1"

// DevTSA is the dev time-stamping authority's configuration.
func DevTSA() *config.TSA {
	yes := true
	return &config.TSA{
		Key: "tsa", Policy: DevPolicy, AcceptedPolicies: []string{"1.2.3.4.2"},
		Accuracy: time.Second, Hashes: []string{"sha256", "sha384", "sha512"}, IncludeTSAName: &yes,
	}
}

// Provision creates each dev key that the token lacks, certifies it with the
// dev CA, and writes its certificate to DIR/<alias>.pem.
func Provision(ctx context.Context, ks *keystore.Store, dir string, now time.Time) error {
	c, err := devca.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), now)
	if err != nil {
		return err
	}
	for _, dk := range Keys {
		k, err := ks.GetKey(ctx, dk.Alias)
		switch {
		case errors.Is(err, keystore.ErrKeyNotFound):
			v, err := ks.CreateKey(ctx, dk.Alias, dk.Purpose, dk.Algorithm)
			if err != nil {
				return fmt.Errorf("dev key %s: %w", dk.Alias, err)
			}
			cert, err := c.Issue(dk.Alias, dk.kind, v.Public, now)
			if err != nil {
				return err
			}
			v, err = ks.ImportCertificate(ctx, dk.Alias, v.Version, append([]*x509.Certificate{cert}, c.Cert))
			if err != nil {
				return fmt.Errorf("dev key %s: %w", dk.Alias, err)
			}
			k, err = ks.GetKey(ctx, dk.Alias)
			if err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("dev key %s: %w", dk.Alias, err)
		}
		for _, v := range k.Versions {
			if v.Primary && v.Certificate() != nil {
				if err := devca.WriteCerts(filepath.Join(dir, dk.Alias+".pem"), v.Certificate()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func randomPIN() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux; a PIN without entropy must not be made
	}
	return hex.EncodeToString(b)
}

func configYAML(module string) string {
	return `# pecetd dev configuration, written by ` + "`pecetd --dev`" + ` on first start.
# Relative paths are relative to this folder. Not for production.
grpc:
  addr: ` + config.DefaultGRPCAddr + `
  tls:
    cert: server.pem
    key: server-key.pem
    client_ca: ca.pem
http:
  addr: ` + config.DefaultHTTPAddr + `
  tsa:                          # POST /tsa limits, raised so that pecet bench measures the TSA
    rate_per_client: 100000     # (production defaults: 10/s per address, 200/s in all)
    burst_per_client: 1000
    rate: 100000
    burst: 1000
token:
  module: ` + module + `
  label: ` + TokenLabel + `
  pin_file: pin
  oaep: auto                    # RSA-OAEP on the token when it can, else raw RSA + unpadding in pecet
trust:
  anchors: [ca.pem]
# The dev policy judges chains against the dev CA: no qualification is
# required and the dev CA publishes no CRLs, so revocation is off.
default_policy: dev
policies:
  dev:
    description: dev CA, not qualified, no revocation
    anchors: [ca.pem]
    algorithms: {min_rsa_bits: 2048, min_ec_bits: 256}
    revocation: {mode: "off"}
    allow_overrides: [revocation, anchors, crls]   # a dev convenience; named policies list what they allow
clients:
  - identity: client
    roles: [client]
    keys: [client-sign, gateway-decrypt]   # gateway-decrypt: as an Encrypt recipient only
  - identity: gateway
    roles: [gateway]
    keys: [gateway-decrypt]
  - identity: officer
    roles: [officer]
    keys: ["*"]
  - identity: officer-2        # a second officer, for dual control
    roles: [officer]
    keys: ["*"]
tsa:                     # RFC 3161: POST /tsa, TimestampService, pecet sign --timestamp
  key: tsa
  policy: ` + DevPolicy + `        # OpenSSL's example policy: a placeholder, not a real TSA
  accepted_policies: [1.2.3.4.2]
  accuracy: 1s
  ordering: false
  hashes: [sha256, sha384, sha512]
  include_tsa_name: true
audit:
  file: audit.log             # one per pecetd process (it is locked)
  key: ` + AuditKey + `                  # AUDIT key on the token: signs checkpoints (certificate: audit.pem)
  checkpoint_interval: 1m
keys:
  expiry_warning_days: 30
  archive_renewal_warning_days: 90   # archive renew warns this long before the last time-stamp's TSA certificate expires
  # dual_control:             # a second officer approves these (pecet keys approve ID)
  #   aliases: ["cssz-*"]
  #   operations: [create, set-primary, destroy]
  #   request_ttl: 24h
`
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Tighten makes the dev folder private on every start: the folder and the
// SoftHSM token folder (tokens/, the dev keys) 0700 with their files 0600,
// and the secrets at the top (pin, so-pin, ca-key.pem and every other
// *-key.pem) 0600. Symbolic links are left alone (their targets are not
// the dev folder's). See docs/security.md "Dev mode".
func Tighten(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil { //nolint:gosec // a directory: 0700 is the owner only
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
		case e.IsDir() && e.Name() == "tokens":
			if err := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				switch {
				case d.Type()&fs.ModeSymlink != 0:
					return nil
				case d.IsDir():
					return os.Chmod(q, 0o700) //nolint:gosec // a directory: 0700 is the owner only
				}
				return os.Chmod(q, 0o600) //nolint:gosec // symlinks are skipped above, and the folder is the user's own
			}); err != nil {
				return err
			}
		case e.Type().IsRegular() && secretFile(e.Name()):
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// secretFile names the dev folder's key and PIN files.
func secretFile(name string) bool {
	return name == "pin" || name == "so-pin" || strings.HasSuffix(name, "-key.pem")
}

// ErrRemote: --dev asked to listen beyond this machine without
// --dev-allow-remote.
var ErrRemote = errors.New("dev mode listens on loopback addresses only")

// CheckListen refuses, unless allowRemote, a gRPC or HTTP address that is
// not loopback: the dev folder's CA key and PIN sit on disk, and POST /tsa
// and /metrics are open to whoever reaches the HTTP port. A host name
// other than localhost counts as remote (it may resolve to anything). With
// allowRemote it returns the remote addresses for a warning.
func CheckListen(grpcAddr, httpAddr string, allowRemote bool) (remote []string, err error) {
	for _, a := range []struct{ flag, addr string }{{"--grpc-addr", grpcAddr}, {"--http-addr", httpAddr}} {
		if !Loopback(a.addr) {
			remote = append(remote, a.flag+" "+a.addr)
		}
	}
	if len(remote) > 0 && !allowRemote {
		return remote, fmt.Errorf("%w: %s is reachable from other machines, and the dev CA key, the PIN and open POST /tsa and /metrics come with it; use 127.0.0.1, or add --dev-allow-remote if you really mean it", ErrRemote, strings.Join(remote, " and "))
	}
	return remote, nil
}

// Loopback reports whether a listen address (host:port) binds to loopback
// only: localhost or a loopback IP. An empty host binds every interface.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
