package keystore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Defaults for Config's zero values.
const (
	DefaultMaxSessions = 16
	DefaultCacheTTL    = 500 * time.Millisecond
	// DefaultRetryInterval is the first wait between attempts to bring a
	// lost token back; it doubles up to maxRetryInterval.
	DefaultRetryInterval = time.Second
	maxRetryInterval     = 30 * time.Second
)

// Store is an open, logged-in token.
type Store struct {
	mod  *module
	p    p11
	cfg  Config // kept to find the token and log in again after it came back
	log  *slog.Logger
	ttl  time.Duration
	caps Capabilities
	info TokenInfo

	// slot, login and gen change only in recover, with mod.gate held for
	// writing; everything that uses them holds it for reading.
	slot uint
	// gen is the module generation the slot, the login session, the pooled
	// sessions and the cached object handles belong to (module.gen).
	gen atomic.Uint64

	// login is the session C_Login ran on. It stays open for the Store's
	// lifetime: closing the last session of a token logs the application
	// out, and pooled sessions come and go.
	loginMu sync.Mutex
	login   pkcs11.SessionHandle

	pool  *pool
	cache cache

	// health is ready, recovering or loginFailed (recovery.go).
	health healthState

	// mu serialises key lifecycle changes made through this Store (they are
	// read-modify-write cycles of the metadata object).
	mu sync.Mutex

	// nudgeTimers run nudge's writes (lifecycle.go); nudgeStopped once
	// the Store closes.
	nudgeMu      sync.Mutex
	nudgeTimers  [len(nudgeDelays)]*time.Timer
	nudgeStopped bool

	// warned holds "alias/version/problem" of refused versions already
	// logged, so that each is logged once, not at every cache refresh.
	warned sync.Map

	oaepMu sync.Mutex
	oaep   map[oaepParams]bool // token's answer per OAEP hash pair, once known

	closeOnce sync.Once
	closeErr  error
}

// Open loads the module (once per process and path), finds the token, logs in
// exactly once and starts the session pool.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return open(ctx, cfg, nil)
}

// OpenWith is Open with wrap between the Store and its PKCS#11 module:
// wrap gets the module's calls and returns what the Store calls instead
// (the token faults of the tests and the soak, internal/faultinject).
// wrap runs once, when the Store opens.
func OpenWith(ctx context.Context, cfg Config, wrap func(Module) Module) (*Store, error) {
	return open(ctx, cfg, wrap)
}

// open is Open with an optional wrapper around the module's p11 calls
// (tests and fault injection).
func open(ctx context.Context, cfg Config, wrap func(p11) p11) (s *Store, err error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if err := checkConfig(&cfg); err != nil {
		return nil, err
	}
	mod, err := acquireModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	var p p11 = mod.ctx
	if wrap != nil {
		p = wrap(p)
	}
	s = &Store{mod: mod, p: p, cfg: cfg, log: cfg.Logger, ttl: cfg.CacheTTL, oaep: map[oaepParams]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.cache = newCache()
	s.health.init()
	// The slot scan below must not run while InitToken adds a token:
	// SoftHSM's C_GetSlotList and C_InitToken both update its slot table,
	// and together they trip its assertion in SlotManager::insertToken
	// (the process aborts). initMu is taken before gate, as InitToken does.
	mod.initMu.Lock()
	defer mod.initMu.Unlock()
	// Nothing else can re-initialise the module while we open: a Store
	// begins in the generation it found.
	mod.gate.RLock()
	defer mod.gate.RUnlock()
	s.gen.Store(mod.gen.Load())
	defer func() {
		if err != nil {
			_ = mod.release()
		}
	}()

	slot, info, err := findToken(p, cfg)
	if err != nil {
		return nil, err
	}
	s.slot = slot
	size := cfg.MaxSessions
	// The token may cap sessions; one of them is the login session.
	if m := info.MaxRwSessionCount; m != pkcs11.CK_EFFECTIVELY_INFINITE && m != pkcs11.CK_UNAVAILABLE_INFORMATION && m > 1 && uint(size) > m-1 {
		size = int(m - 1)
	}
	s.info = tokenInfoOf(slot, info, size)

	mechs, err := p.GetMechanismList(slot)
	if err != nil {
		return nil, p11Error("C_GetMechanismList", err)
	}
	s.caps = capabilitiesOf(mechs)

	s.login, err = p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, p11Error("C_OpenSession", err)
	}
	// Exactly one C_Login, never retried: an HSM locks the user PIN after a
	// few failures, and a loop here would burn them all in milliseconds.
	if err := login(p, s.login, cfg.PIN); err != nil {
		_ = p.CloseSession(s.login)
		return nil, err
	}
	mod.addLogin(slot)
	s.pool = newPool(p, slot, size)
	return s, nil
}

// login runs C_Login once. CKR_USER_ALREADY_LOGGED_IN is success: the login
// belongs to the process, and another Store (or our own earlier life, before
// the token came back) may have logged it in.
func login(p p11, sh pkcs11.SessionHandle, pin string) error {
	err := p.Login(sh, pkcs11.CKU_USER, pin)
	switch {
	case err == nil || rvIs(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		return nil
	case rvIs(err, pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_INVALID, pkcs11.CKR_PIN_LEN_RANGE):
		return fmt.Errorf("%w: %w", ErrPINIncorrect, err)
	case rvIs(err, pkcs11.CKR_PIN_LOCKED):
		return fmt.Errorf("%w: %w", ErrPINLocked, err)
	}
	return p11Error("C_Login", err)
}

func checkConfig(cfg *Config) error {
	// Several selectors may be given (an RFC 7512 URI often names both
	// token and serial): a token must then match every one.
	if cfg.TokenLabel == "" && cfg.TokenSerial == "" && cfg.Slot == nil {
		return errors.New("keystore: config: set a token label, a token serial or a slot")
	}
	if cfg.MaxSessions < 0 || cfg.CacheTTL < 0 || cfg.RetryInterval < 0 {
		return errors.New("keystore: config: negative MaxSessions, CacheTTL or RetryInterval")
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	return nil
}

// findToken selects the slot by label, serial or id. Slot ids are not stable
// (SoftHSM renumbers its slots at every C_Initialize), labels and serials are.
func findToken(p p11, cfg Config) (uint, pkcs11.TokenInfo, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, p11Error("C_GetSlotList", err)
	}
	var found []uint
	var info pkcs11.TokenInfo
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil {
			continue // a slot emptied meanwhile is simply not our token
		}
		match := (cfg.Slot == nil || slot == *cfg.Slot) &&
			(cfg.TokenLabel == "" || ti.Label == cfg.TokenLabel) &&
			(cfg.TokenSerial == "" || ti.SerialNumber == cfg.TokenSerial)
		if cfg.Slot == nil && ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			// An uninitialised token has no meaningful label or serial.
			match = false
		}
		if match {
			found = append(found, slot)
			info = ti
		}
	}
	var sel []string
	if cfg.TokenLabel != "" {
		sel = append(sel, fmt.Sprintf("label %q", cfg.TokenLabel))
	}
	if cfg.TokenSerial != "" {
		sel = append(sel, fmt.Sprintf("serial %q", cfg.TokenSerial))
	}
	if cfg.Slot != nil {
		sel = append(sel, fmt.Sprintf("slot %d", *cfg.Slot))
	}
	what := strings.Join(sel, ", ")
	switch len(found) {
	case 0:
		return 0, info, fmt.Errorf("%w: %s", ErrTokenNotFound, what)
	case 1:
		return found[0], info, nil
	}
	return 0, info, fmt.Errorf("%w: %s matches %d tokens", ErrTokenNotFound, what, len(found))
}

// InitToken initialises a fresh token in the first free slot with the given
// label, SO PIN and user PIN (SoftHSM dev and test tokens). It works whether
// or not the process already has the module loaded. SoftHSM offers a new
// free slot after each in-process C_InitToken, but does not see tokens that
// another process created after this one's C_Initialize.
func InitToken(modulePath, label, soPIN, userPIN string) (err error) {
	if label == "" || len(label) > 32 {
		return fmt.Errorf("keystore: token label must be 1 to 32 bytes, got %d", len(label))
	}
	if soPIN == "" || userPIN == "" {
		return errors.New("keystore: empty SO or user PIN")
	}
	mod, err := acquireModule(modulePath)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := mod.release(); err == nil {
			err = rerr
		}
	}()
	mod.initMu.Lock()
	defer mod.initMu.Unlock()
	mod.gate.RLock()
	defer mod.gate.RUnlock()
	var p p11 = mod.ctx

	slots, err := p.GetSlotList(true)
	if err != nil {
		return p11Error("C_GetSlotList", err)
	}
	free, haveFree := uint(0), false
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil {
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 {
			if ti.Label == label {
				return fmt.Errorf("%w: %q", ErrTokenExists, label)
			}
			continue
		}
		if !haveFree {
			free, haveFree = slot, true
		}
	}
	if !haveFree {
		return fmt.Errorf("%w: no uninitialised slot", ErrTokenNotFound)
	}
	if err := p.InitToken(free, soPIN, label); err != nil {
		return p11Error("C_InitToken", err)
	}
	sh, err := p.OpenSession(free, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return p11Error("C_OpenSession", err)
	}
	defer func() { _ = p.CloseSession(sh) }()
	if err := p.Login(sh, pkcs11.CKU_SO, soPIN); err != nil {
		return p11Error("C_Login(SO)", err)
	}
	if err := p.InitPIN(sh, userPIN); err != nil {
		_ = p.Logout(sh)
		return p11Error("C_InitPIN", err)
	}
	if err := p.Logout(sh); err != nil {
		return p11Error("C_Logout", err)
	}
	return nil
}

// Close stops recovery, waits for operations in flight, releases the
// sessions, logs out when this is the last Store logged in on the token in
// the process, and finalises the module when it is its last user.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.nudgeMu.Lock() // waits for a nudge under way
		s.nudgeStopped = true
		for _, t := range s.nudgeTimers {
			if t != nil {
				t.Stop()
			}
		}
		s.nudgeMu.Unlock()
		s.health.stop()
		s.pool.shutdown()
		errs := []error{s.closeSessions()}
		errs = append(errs, s.mod.release())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// closeSessions closes the idle pooled sessions and the login session, and
// logs out when this Store is the last one logged in on the token.
func (s *Store) closeSessions() error {
	s.mod.gate.RLock()
	defer s.mod.gate.RUnlock()
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	last := s.mod.dropLogin(s.slot)
	if s.gen.Load() != s.mod.gen.Load() {
		// The module was re-initialised under us: our session handles
		// are void and their numbers may be another Store's now.
		s.pool.forget()
		return nil
	}
	s.pool.purgeIdle()
	var err error
	// The login is the application's, shared with any other Store on this
	// token in the process: only the last one logs out.
	if last {
		if lerr := s.p.Logout(s.login); lerr != nil && !rvIs(lerr, pkcs11.CKR_USER_NOT_LOGGED_IN) && !sessionLost(lerr) && !tokenGone(lerr) {
			err = p11Error("C_Logout", lerr)
		}
	}
	_ = s.p.CloseSession(s.login)
	return err
}

// Ping checks that the token is present and logged in (readiness). When it
// finds the token gone or logged out, it starts recovery. After a refused
// PIN it reports ErrPINIncorrect or ErrPINLocked until the Store is closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if s.pool.isClosed() {
		return errClosed
	}
	if err := s.health.err(); err != nil {
		return err
	}
	if !s.mod.gate.TryRLock() {
		return errReinit
	}
	defer s.mod.gate.RUnlock()
	if s.gen.Load() != s.mod.gen.Load() {
		return s.broken(errStaleModule)
	}
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	if _, err := s.p.GetTokenInfo(s.slot); err != nil {
		return s.broken(fmt.Errorf("%w: C_GetTokenInfo: %w", ErrTokenUnavailable, err))
	}
	si, err := s.p.GetSessionInfo(s.login)
	if err != nil {
		return s.broken(fmt.Errorf("%w: C_GetSessionInfo: %w", ErrTokenUnavailable, err))
	}
	if si.State != pkcs11.CKS_RW_USER_FUNCTIONS && si.State != pkcs11.CKS_RO_USER_FUNCTIONS {
		return s.broken(fmt.Errorf("%w: not logged in (session state %d)", ErrTokenUnavailable, si.State))
	}
	return nil
}

// PoolStats reports sessions in use and callers waiting (metrics).
func (s *Store) PoolStats() (inUse, waiting int) { return s.pool.stats() }

// Capabilities reports the mechanisms the token lists (C_GetMechanismList
// at Open).
func (s *Store) Capabilities() Capabilities { return s.caps }
