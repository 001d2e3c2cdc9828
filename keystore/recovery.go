package keystore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// A Store is ready, recovering (the token went away or logged out; a
// goroutine brings it back) or loginFailed (the token refused the PIN when
// logging in again: permanent until the Store is closed, since retrying
// would lock a real HSM's PIN).
const (
	stateReady int32 = iota
	stateRecovering
	stateLoginFailed
)

var (
	// errReinit: a call arrived while the module is being re-initialised.
	// It fails at once rather than queue behind C_Finalize.
	errReinit = fmt.Errorf("%w: the token is being re-initialised", ErrTokenUnavailable)
	// errStaleModule: another Store in the process re-initialised the
	// module, so this Store's sessions and handles are void.
	errStaleModule = fmt.Errorf("%w: the module was re-initialised", ErrTokenUnavailable)
	// errStaleHandle: an object handle from before a re-initialisation.
	errStaleHandle = fmt.Errorf("%w: object handle from before the token came back", ErrTokenUnavailable)
)

// healthState is a Store's state and its recovery goroutine.
type healthState struct {
	state atomic.Int32
	cause atomic.Pointer[error]

	mu      sync.Mutex
	closing bool
	stopc   chan struct{}
	wg      sync.WaitGroup
}

func (h *healthState) init() { h.stopc = make(chan struct{}) }

// err is nil when ready, else what a call gets instead of touching the token.
func (h *healthState) err() error {
	switch h.state.Load() {
	case stateReady:
		return nil
	case stateLoginFailed:
		return *h.cause.Load()
	}
	if c := h.cause.Load(); c != nil {
		return fmt.Errorf("keystore: recovering the token: %w", *c)
	}
	return errReinit
}

// begin registers a recovery goroutine unless the Store is closing.
func (h *healthState) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.wg.Add(1)
	return true
}

// stop ends recovery (Close) and waits for it.
func (h *healthState) stop() {
	h.mu.Lock()
	if !h.closing {
		h.closing = true
		close(h.stopc)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// broken records that the token is gone or logged out, starts recovery once,
// and returns the error for the call that found it.
func (s *Store) broken(cause error) error {
	if !errors.Is(cause, ErrTokenUnavailable) {
		cause = fmt.Errorf("%w: %w", ErrTokenUnavailable, cause)
	}
	if s.health.state.CompareAndSwap(stateReady, stateRecovering) {
		s.health.cause.Store(&cause)
		if s.health.begin() {
			s.log.Warn("PKCS#11 token lost; recovering", "err", cause.Error())
			go s.recoverLoop()
		}
	}
	return cause
}

// classify turns a failed call's error into what the caller gets, starting
// recovery when the error says the token, the module or the login is gone.
func (s *Store) classify(err error) error {
	switch {
	case err == nil:
		return nil
	case tokenGone(err):
		return s.broken(err)
	case rvIs(err, pkcs11.CKR_USER_NOT_LOGGED_IN):
		return s.broken(fmt.Errorf("logged out: %w", err))
	}
	return err
}

// checkLogin starts recovery when the login session is gone or logged out:
// then every session is. Called with the module gate held for reading.
func (s *Store) checkLogin() {
	s.loginMu.Lock()
	si, err := s.p.GetSessionInfo(s.login)
	s.loginMu.Unlock()
	switch {
	case err != nil:
		_ = s.broken(fmt.Errorf("login session: %w", err)) // a probe: broken starts recovery, and the next call reports the cause
	case si.State != pkcs11.CKS_RW_USER_FUNCTIONS && si.State != pkcs11.CKS_RO_USER_FUNCTIONS:
		_ = s.broken(fmt.Errorf("login session state %d: not logged in", si.State))
	}
}

// recoverLoop brings the token back: it tries at once, then after
// RetryInterval, doubling up to maxRetryInterval, until it succeeds, the PIN
// is refused (no retry: a real HSM locks the PIN) or the Store closes.
func (s *Store) recoverLoop() {
	defer s.health.wg.Done()
	wait := s.cfg.RetryInterval
	for attempt := 1; ; attempt++ {
		err := s.recoverOnce()
		switch {
		case err == nil:
			s.health.state.Store(stateReady)
			s.log.Info("PKCS#11 token recovered", "attempts", attempt)
			return
		case errors.Is(err, ErrPINIncorrect), errors.Is(err, ErrPINLocked):
			s.health.cause.Store(&err)
			s.health.state.Store(stateLoginFailed)
			s.log.Error("PKCS#11 token refused the PIN when logging in again; not retrying (restart pecetd after fixing the PIN)", "err", err.Error())
			return
		case errors.Is(err, errClosed):
			return
		}
		cause := fmt.Errorf("%w: %w", ErrTokenUnavailable, err)
		s.health.cause.Store(&cause)
		s.log.Warn("PKCS#11 token still unavailable", "attempt", attempt, "retry_in", wait.String(), "err", err.Error())
		select {
		case <-time.After(wait):
		case <-s.health.stopc:
			return
		}
		wait = min(2*wait, maxRetryInterval)
	}
}

// recoverOnce re-initialises the module (unless another Store already did
// since this one's generation), finds the token again by label or serial,
// logs in once on a new login session and reads the keys again. It holds the
// module gate for writing: it starts only when no call is in flight, and
// calls that arrive meanwhile fail at once with ErrTokenUnavailable.
func (s *Store) recoverOnce() error {
	s.mod.gate.Lock()
	defer s.mod.gate.Unlock()
	s.health.mu.Lock()
	closing := s.health.closing
	s.health.mu.Unlock()
	if closing {
		return errClosed
	}
	if err := s.mod.reinit(s.gen.Load()); err != nil {
		return err
	}
	// Sessions of the old generation died with it.
	s.pool.forget()
	s.cache.clear()
	slot, _, err := findToken(s.p, s.cfg)
	if err != nil {
		return err
	}
	sh, err := s.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return p11Error("C_OpenSession", err)
	}
	if err := login(s.p, sh, s.cfg.PIN); err != nil {
		_ = s.p.CloseSession(sh)
		return err
	}
	s.loginMu.Lock()
	s.login = sh
	s.loginMu.Unlock()
	if slot != s.slot {
		// The login count is per slot id, and the id changed.
		s.mod.moveLogin(s.slot, slot)
	}
	s.slot = slot
	s.pool.setSlot(slot)
	s.gen.Store(s.mod.gen.Load())

	// Find the keys again now, so that a token that came back without
	// them shows in the log, and the first calls find a warm cache.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	psh, err := s.pool.get(ctx)
	if err != nil {
		return err
	}
	entries, err := s.listOn(psh)
	var rv pkcs11.Error
	s.pool.put(psh, err == nil || !errors.As(err, &rv))
	if err != nil {
		return err
	}
	for _, e := range entries {
		s.cache.put(e.key.Alias, e)
	}
	s.log.Info("PKCS#11 token logged in again", "keys", len(entries))
	return nil
}

// withSession runs fn on a pooled session. A session the token reports lost
// is discarded with its idle siblings and fn runs once more on a fresh one;
// a PKCS#11 failure also discards the session (its operation state is
// unknown), while an error of ours (key not found...) does not.
//
// The caller's context bounds the wait for a session and the call itself:
// a PKCS#11 call cannot be interrupted, so when ctx ends first the caller
// gets ctx's error at once and the call finishes in the background, giving
// its session back when the token answers.
func (s *Store) withSession(ctx context.Context, fn func(sh pkcs11.SessionHandle) error) error {
	if err := s.health.err(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if !s.mod.gate.TryRLock() {
		return errReinit
	}
	if s.gen.Load() != s.mod.gen.Load() {
		s.mod.gate.RUnlock()
		return s.broken(errStaleModule)
	}
	sh, err := s.pool.get(ctx)
	if err != nil {
		s.mod.gate.RUnlock()
		return s.classify(err)
	}
	if ctx.Done() == nil {
		defer s.mod.gate.RUnlock()
		return s.run(ctx, sh, fn)
	}
	done := make(chan error, 1)
	go func() {
		defer s.mod.gate.RUnlock()
		done <- s.run(ctx, sh, fn)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done:
			return err
		default:
		}
		return fmt.Errorf("keystore: token call abandoned: %w", ctx.Err())
	}
}

// run is withSession's work on the session it got, with the gate held.
func (s *Store) run(ctx context.Context, sh pkcs11.SessionHandle, fn func(sh pkcs11.SessionHandle) error) error {
	for attempt := 0; ; attempt++ {
		err := fn(sh)
		var rv pkcs11.Error
		s.pool.put(sh, err == nil || !errors.As(err, &rv))
		if err == nil || !sessionLost(err) {
			return s.classify(err)
		}
		s.pool.purgeIdle()
		if attempt > 0 {
			// Two sessions lost in a row: when the login session is
			// gone too, every session is, and the token must be found
			// and logged in again.
			s.checkLogin()
			return fmt.Errorf("%w: %w", ErrTokenUnavailable, err)
		}
		if sh, err = s.pool.get(ctx); err != nil {
			return s.classify(err)
		}
	}
}

// withKey runs fn with a key version's object handle. Handles belong to one
// module generation; when the token came back since the handle was looked
// up, it is looked up again (once) rather than used: its number may now
// name another object.
func (s *Store) withKey(ctx context.Context, v Version, h pkcs11.ObjectHandle, gen uint64, fn func(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) error) error {
	for attempt := 0; ; attempt++ {
		err := s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
			if s.gen.Load() != gen {
				return errStaleHandle
			}
			return fn(sh, h)
		})
		if !errors.Is(err, errStaleHandle) || attempt > 0 {
			return err
		}
		if _, h, gen, err = s.usable(ctx, v.Alias, v.Version, v.Purpose); err != nil {
			return err
		}
	}
}
