package daemon

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"time"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/keystore"
)

// InitAuditKey (pecetd --init-audit-key) makes sure the token holds the
// AUDIT key that audit.key names, and writes its certificate (PEM) to out:
// what `pecet audit verify --cert` checks the log's checkpoints with. A
// missing key is generated on the token (EC P-256, purpose AUDIT) and
// certified by itself, signed on the token; the KeyService cannot create
// it (its API has no AUDIT purpose), so no client can. An operator may
// later import a certificate from the organisation's CA instead (`pecet
// keys csr`, `pecet keys import-cert`). docs/operations.md "The audit key".
func InitAuditKey(ctx context.Context, o Options, out io.Writer, log *slog.Logger) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg, err := loadConfig(o)
	if err != nil {
		return err
	}
	alias := cfg.Audit.Key
	if alias == "" {
		return errors.New("config: audit.key is required: the alias of the AUDIT key to create")
	}
	pin, err := cfg.Token.PIN()
	if err != nil {
		return err
	}
	ks, err := openStore(ctx, keystore.Config{ModulePath: cfg.Token.Module, TokenLabel: cfg.Token.Label, TokenSerial: cfg.Token.Serial,
		Slot: cfg.Token.Slot, PIN: pin, MaxSessions: cfg.Token.MaxSessions, CacheTTL: cfg.Token.CacheTTL, Logger: log}, log)
	if err != nil {
		return fmt.Errorf("open token: %w", err)
	}
	defer ks.Close()
	k, err := ks.GetKey(ctx, alias)
	switch {
	case errors.Is(err, keystore.ErrKeyNotFound):
		if k, err = createAuditKey(ctx, ks, alias, o.Now()); err != nil {
			return fmt.Errorf("audit key %q: %w", alias, err)
		}
		log.Info("audit key created", "alias", alias)
	case err != nil:
		return fmt.Errorf("audit key %q: %w", alias, err)
	case k.Purpose != keystore.PurposeAudit:
		return fmt.Errorf("audit key %q: %w: it is %s, not AUDIT (audit.key must name a key made for the audit log alone)", alias, keystore.ErrWrongPurpose, k.Purpose)
	}
	for _, v := range k.Versions {
		if v.Primary && v.Certificate() != nil {
			return pem.Encode(out, &pem.Block{Type: "CERTIFICATE", Bytes: v.Certificate().Raw})
		}
	}
	return fmt.Errorf("audit key %q has no certified primary version: certify one (pecet keys csr, pecet keys import-cert)", alias)
}

func createAuditKey(ctx context.Context, ks *keystore.Store, alias string, now time.Time) (keystore.Key, error) {
	v, err := ks.CreateKey(ctx, alias, keystore.PurposeAudit, keystore.ECP256)
	if err != nil {
		return keystore.Key{}, err
	}
	signer, err := ks.ProofSigner(ctx, alias, v.Version)
	if err != nil {
		return keystore.Key{}, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return keystore.Key{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "pecet audit key " + alias},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(20, 0, 0), // it vouches for logs kept for years
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, v.Public, signer)
	if err != nil {
		return keystore.Key{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keystore.Key{}, err
	}
	if _, err := ks.ImportCertificate(ctx, alias, v.Version, []*x509.Certificate{cert}); err != nil {
		return keystore.Key{}, err
	}
	return ks.GetKey(ctx, alias)
}

// auditTokenKey returns audit.CheckpointOptions.Key for the AUDIT key alias
// on the token: its primary version. Each signature takes one pooled session
// for one C_Sign (keystore.KeySigner), so a checkpoint never holds a session.
// It lives here, not in internal/audit, so that the audit package (linked
// into the pecet client for `pecet audit verify`) does not import keystore
// and PKCS#11 (docs/architecture.md).
func auditTokenKey(ks *keystore.Store, alias string) func(context.Context) (audit.CheckpointKey, error) {
	return func(ctx context.Context) (audit.CheckpointKey, error) {
		return ks.Signer(ctx, alias, 0, keystore.PurposeAudit)
	}
}
