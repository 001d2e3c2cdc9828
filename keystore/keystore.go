package keystore

import (
	"crypto"
	"crypto/x509"
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors. Callers test them with errors.Is; the server maps them to
// gRPC codes in one place (internal/grpcerr). Wrapped causes may carry PKCS#11
// return values for the log, never a PIN.
var (
	// ErrModule: the PKCS#11 module cannot be loaded or initialised.
	ErrModule = errors.New("keystore: PKCS#11 module cannot be loaded")
	// ErrTokenNotFound: no token with the configured label, serial or slot.
	ErrTokenNotFound = errors.New("keystore: token not found")
	// ErrPINIncorrect: the token refused the PIN. Never retried (a real HSM
	// locks the token after a few wrong PINs).
	ErrPINIncorrect = errors.New("keystore: PIN incorrect")
	// ErrPINLocked: the token's user PIN is locked.
	ErrPINLocked = errors.New("keystore: PIN locked")
	// ErrTokenUnavailable: the token went away (device removed, sessions lost).
	ErrTokenUnavailable = errors.New("keystore: token unavailable")
	// ErrPoolExhausted: no session became free before the caller's deadline.
	ErrPoolExhausted = errors.New("keystore: no free PKCS#11 session")
	// ErrKeyNotFound: no key with that alias on the token.
	ErrKeyNotFound = errors.New("keystore: key not found")
	// ErrVersionNotFound: the alias exists but not that version.
	ErrVersionNotFound = errors.New("keystore: key version not found")
	// ErrKeyExists: CreateKey for an alias that is already on the token.
	ErrKeyExists = errors.New("keystore: key already exists")
	// ErrWrongPurpose: the key exists but its purpose is not the one asked for.
	ErrWrongPurpose = errors.New("keystore: key has another purpose")
	// ErrKeyNotEnabled: the version is pending a certificate, disabled or destroyed.
	ErrKeyNotEnabled = errors.New("keystore: key version is not enabled")
	// ErrNoPrimary: the alias has no enabled primary version.
	ErrNoPrimary = errors.New("keystore: key has no primary version")
	// ErrUnsupportedAlgorithm: algorithm not offered for that purpose.
	ErrUnsupportedAlgorithm = errors.New("keystore: unsupported algorithm")
	// ErrCertificateMismatch: certificate's public key is not the version's key.
	ErrCertificateMismatch = errors.New("keystore: certificate does not match the key")
	// ErrInvalidAlias: alias empty, too long or with characters outside [a-z0-9._-].
	ErrInvalidAlias = errors.New("keystore: invalid alias")
)

// Purpose is what a key may be used for. It is fixed at creation.
type Purpose string

// Purposes, as the API names them (docs/api.md "CreateKey").
const (
	PurposeSign      Purpose = "SIGN"
	PurposeDecrypt   Purpose = "DECRYPT"
	PurposeTimestamp Purpose = "TIMESTAMP"
	// PurposeAudit signs the audit log's checkpoints (internal/audit) and
	// nothing else: Sign and Timestamp refuse it, so no caller can have it
	// sign a message of their choosing. docs/security.md "Audit log".
	PurposeAudit Purpose = "AUDIT"
)

// Algorithm is a key-pair type the token generates.
type Algorithm string

// Algorithms, as the API names them (docs/api.md "CreateKey"). Decrypt keys
// are RSA only.
const (
	RSA2048 Algorithm = "RSA_2048"
	RSA3072 Algorithm = "RSA_3072"
	RSA4096 Algorithm = "RSA_4096"
	ECP256  Algorithm = "EC_P256"
	ECP384  Algorithm = "EC_P384"
)

// State is a key version's lifecycle state.
type State string

// States: PENDING_CERTIFICATE → ENABLED ↔ DISABLED → DESTROYED.
const (
	StatePendingCertificate State = "PENDING_CERTIFICATE"
	StateEnabled            State = "ENABLED"
	StateDisabled           State = "DISABLED"
	StateDestroyed          State = "DESTROYED"
)

// Config selects a token and bounds the resources used on it.
type Config struct {
	// ModulePath is the PKCS#11 library (for SoftHSM2 see softhsm.FindModule).
	ModulePath string
	// TokenLabel selects the token by its label; TokenSerial by serial
	// number; Slot by slot id. At least one must be set; a token must match
	// every one that is set (as the attributes of an RFC 7512 URI do).
	TokenLabel  string
	TokenSerial string
	Slot        *uint
	// PIN is the user PIN, read by the caller from a file or an environment
	// variable. It is used for exactly one C_Login and never logged.
	PIN string
	// MaxSessions bounds the session pool (default 16).
	MaxSessions int
	// CacheTTL is how long a looked-up key is trusted before the token is
	// read again, so that another process's rotation is seen (default 500ms).
	CacheTTL time.Duration
	// RetryInterval is the first wait between attempts to bring back a
	// token that went away (default 1s, doubling up to 30s).
	RetryInterval time.Duration
	// Logger receives the token's state changes (lost, recovered, PIN
	// refused); nil discards them. Never the PIN.
	Logger *slog.Logger
}

// Version is one key version: a key pair on the token and, once certified,
// its certificate chain (leaf first).
type Version struct {
	Alias     string
	Version   int
	Purpose   Purpose
	Algorithm Algorithm
	State     State
	Primary   bool
	Public    crypto.PublicKey
	Chain     []*x509.Certificate
	CreatedAt time.Time
	// BeenPrimary: the version is or has been the alias's primary (or was
	// recorded before this was tracked). Under dual control of set-primary
	// only such versions may sign or decrypt (docs/security.md).
	BeenPrimary bool
	// Problem, when not empty, says why the version is refused for every
	// use (its certificate or public key object on the token does not match
	// its private key); a fixed text, safe to show.
	Problem string
}

// Certificate returns the leaf certificate, or nil when pending.
func (v Version) Certificate() *x509.Certificate {
	if len(v.Chain) == 0 {
		return nil
	}
	return v.Chain[0]
}

// Key is an alias with its versions, oldest first.
type Key struct {
	Alias          string
	Purpose        Purpose
	Algorithm      Algorithm
	PrimaryVersion int // 0 when none
	Versions       []Version
	// Err is set, and nothing else but Alias, when ListKeys could not read
	// the alias (the other aliases still list). For the log: it may carry
	// PKCS#11 return values.
	Err error
}

// Errors added by the implementation.
var (
	// ErrInvalidPurpose: a purpose other than SIGN, DECRYPT, TIMESTAMP, AUDIT.
	ErrInvalidPurpose = errors.New("keystore: invalid purpose")
	// ErrTokenExists: InitToken with a label a token already has.
	ErrTokenExists = errors.New("keystore: token label already in use")
	// ErrInvalidState: a lifecycle change the version's state does not
	// allow (enable a destroyed version, disable the primary, ...).
	ErrInvalidState = errors.New("keystore: key version state does not allow this")
	// ErrVersionRefused: the version's certificate or public key object on
	// the token does not match its private key; it is used for nothing
	// until an officer imports a matching certificate.
	ErrVersionRefused = errors.New("keystore: key version refused: its certificate does not match its key pair")
	// ErrConflict: another process kept changing the alias at the same
	// time; the change was not made.
	ErrConflict = errors.New("keystore: concurrent change of the key on another replica")
)
