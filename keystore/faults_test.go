package keystore_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// The tests here that take the token away are not parallel: bringing it
// back finalises and initialises the PKCS#11 module, which is one per
// process, so every other Store in the test binary would see its sessions
// vanish too (and recover, but not within a test's assertions).

// openFaulty opens a fresh token through Faults with a short retry interval.
func openFaulty(t *testing.T, mod func(*keystore.Config)) (*keystore.Store, *faultinject.Faults) {
	t.Helper()
	cfg := softhsm.NewTokenConfig(t)
	cfg.RetryInterval = 10 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	s, f, err := openFault(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, f
}

// openFault opens a Store through a fresh Faults, returned even when Open
// fails.
func openFault(ctx context.Context, cfg keystore.Config) (*keystore.Store, *faultinject.Faults, error) {
	f := &faultinject.Faults{}
	s, err := faultinject.Open(ctx, cfg, f)
	return s, f, err
}

// waitFor waits until cond holds (at most 10 s, for a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testtool.Eventually(t, 10*time.Second, cond, what)
}

// logCounter is a slog.Handler that counts the records with one message
// (the Store's log says what its recovery loop did).
type logCounter struct {
	msg string
	n   atomic.Int64
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	return nil
}
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCounter) WithGroup(string) slog.Handler      { return c }

func signOK(t *testing.T, k *keystore.KeySigner, msg string) {
	t.Helper()
	d := digestOf(crypto.SHA256, msg)
	sig, err := k.SignContext(context.Background(), d, crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d, sig) {
		t.Fatal("signature does not verify under the key's public key")
	}
}

// TestLostSessionRetried: a pooled session the token reports lost (either
// return value) costs no request; the session is dropped and never handed
// out again; two losses in a row fail that one request only.
func TestLostSessionRetried(t *testing.T) {
	t.Parallel()
	for _, rv := range []uint{pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED} {
		t.Run(fmt.Sprintf("rv=%#x", rv), func(t *testing.T) {
			s, f := openFaulty(t, func(c *keystore.Config) { c.MaxSessions = 4 })
			enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
			k, err := s.Signer(context.Background(), "k", 0, keystore.PurposeSign)
			if err != nil {
				t.Fatal(err)
			}
			signOK(t, k, "warm")
			f.LoseSessions(1, rv)
			injected, signs := f.Injected.Load(), f.Signs.Load()
			signOK(t, k, "after one loss")
			if n := f.Signs.Load() - signs; n != 2 {
				t.Errorf("%d C_Sign calls, want 2 (lost, retried)", n)
			}
			// The lost session is not reused: 50 signatures, no more faults.
			for i := range 50 {
				signOK(t, k, fmt.Sprint(i))
			}
			if n := f.Injected.Load() - injected; n != 1 {
				t.Errorf("%d injected failures seen, want 1: a dead session was handed out again", n)
			}

			f.LoseSessions(2, rv)
			_, err = k.SignContext(context.Background(), digestOf(crypto.SHA256, "x"), crypto.SHA256)
			if !errors.Is(err, keystore.ErrTokenUnavailable) {
				t.Fatalf("Sign after two losses = %v, want ErrTokenUnavailable", err)
			}
			signOK(t, k, "the next request is fine")
			if err := s.Ping(context.Background()); err != nil {
				t.Errorf("Ping: %v (losing two pooled sessions is no reason to re-initialise)", err)
			}
			if n := f.Logins.Load(); n != 1 {
				t.Errorf("%d C_Login calls, want 1", n)
			}
		})
	}
}

// TestClosingPooledSessionsKeepsLogin: the pool closing every session it
// has does not log the process out (the login session stays open).
func TestClosingPooledSessionsKeepsLogin(t *testing.T) {
	t.Parallel()
	s, f := openFaulty(t, func(c *keystore.Config) { c.MaxSessions = 3 })
	enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
	k, err := s.Signer(context.Background(), "k", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() { signOK(t, k, "parallel") })
	}
	wg.Wait()
	closed := f.Closed.Load()
	keystore.PurgePool(s)
	if f.Closed.Load() == closed {
		t.Fatal("no pooled session was closed")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after closing every pooled session: %v", err)
	}
	signOK(t, k, "after")
	if n := f.Logins.Load(); n != 1 {
		t.Errorf("%d C_Login calls, want 1", n)
	}
}

// TestAlreadyLoggedInIsSuccess: CKR_USER_ALREADY_LOGGED_IN from C_Login
// (another library in the process logged in) opens the Store normally.
func TestAlreadyLoggedInIsSuccess(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	f := &faultinject.Faults{}
	f.FailLogin(pkcs11.CKR_USER_ALREADY_LOGGED_IN)
	s, err := faultinject.Open(context.Background(), cfg, f)
	if err != nil {
		t.Fatalf("Open with CKR_USER_ALREADY_LOGGED_IN: %v", err)
	}
	defer s.Close()
	if f.Injected.Load() != 1 {
		t.Fatal("the fault was not injected")
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
}

// TestTokenRemoved: the token goes away (found by an operation or by
// readiness), calls fail fast with ErrTokenUnavailable, and when it is back
// the Store re-initialises the module, logs in once, finds its keys and
// serves again, with signers made before the loss.
func TestTokenRemoved(t *testing.T) {
	for _, found := range []string{"by Sign", "by Ping"} {
		t.Run(found, func(t *testing.T) {
			attempts := &logCounter{msg: "PKCS#11 token still unavailable"}
			s, f := openFaulty(t, func(c *keystore.Config) { c.Logger = slog.New(attempts) })
			ctx := context.Background()
			enabledKey(t, s, "sig", keystore.PurposeSign, keystore.ECP256)
			dec := enabledKey(t, s, "dec", keystore.PurposeDecrypt, keystore.RSA2048)
			k, err := s.Signer(ctx, "sig", 0, keystore.PurposeSign)
			if err != nil {
				t.Fatal(err)
			}
			signOK(t, k, "before")
			gen, logins := keystore.Generation(s), f.Logins.Load()

			f.RemoveToken()
			if found == "by Sign" {
				_, err = k.SignContext(ctx, digestOf(crypto.SHA256, "x"), crypto.SHA256)
			} else {
				err = s.Ping(ctx)
			}
			if !errors.Is(err, keystore.ErrTokenUnavailable) {
				t.Fatalf("with the token removed: %v, want ErrTokenUnavailable", err)
			}
			// While it is away: readiness false, every call fails at once.
			for range 20 {
				if _, err := k.SignContext(ctx, digestOf(crypto.SHA256, "x"), crypto.SHA256); !errors.Is(err, keystore.ErrTokenUnavailable) {
					t.Fatalf("Sign while removed = %v", err)
				}
			}
			if _, err := s.ListKeys(ctx); !errors.Is(err, keystore.ErrTokenUnavailable) {
				t.Fatalf("ListKeys while removed = %v", err)
			}
			// Several failed recovery attempts (counted in the Store's log).
			waitFor(t, "three failed recovery attempts", func() bool { return attempts.n.Load() >= 3 })
			if err := s.Ping(ctx); !errors.Is(err, keystore.ErrTokenUnavailable) {
				t.Fatalf("Ping while removed = %v", err)
			}

			f.InsertToken()
			waitFor(t, "recovery", func() bool { return s.Ping(ctx) == nil })
			if n := f.Logins.Load() - logins; n != 1 {
				t.Errorf("%d C_Login calls to recover, want exactly 1", n)
			}
			if keystore.Generation(s) == gen {
				t.Error("the module was not re-initialised")
			}
			// The signer from before the loss holds a handle of the old
			// generation: it must look it up again, not use it.
			signOK(t, k, "after, old signer")
			k2, err := s.Signer(ctx, "sig", 0, keystore.PurposeSign)
			if err != nil {
				t.Fatal(err)
			}
			signOK(t, k2, "after, new signer")
			d, err := s.Decrypter(ctx, "dec", 0)
			if err != nil {
				t.Fatal(err)
			}
			ct, err := rsa.EncryptPKCS1v15(rand.Reader, dec.Public.(*rsa.PublicKey), []byte("filing"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := d.Decrypt(nil, ct, nil); err != nil || string(pt) != "filing" {
				t.Fatalf("Decrypt after recovery = %q, %v", pt, err)
			}
		})
	}
}

// TestNoReinitWhileInFlight: a slow call in flight when the token is found
// gone finishes on the module it started on; re-initialisation waits for it.
func TestNoReinitWhileInFlight(t *testing.T) {
	s, f := openFaulty(t, nil)
	ctx := context.Background()
	enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
	k, err := s.Signer(ctx, "k", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatal(err)
	}
	gen := keystore.Generation(s)
	f.SetDelay(300 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		d := digestOf(crypto.SHA256, "in flight")
		sig, err := k.SignContext(ctx, d, crypto.SHA256)
		if err == nil && !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d, sig) {
			err = errors.New("bad signature")
		}
		done <- err
	}()
	// Past the fault checks and held in the delay: a session in use alone
	// would not do, the call could still meet the removal below.
	waitFor(t, "the sign to be in flight", func() bool { return f.Slowed.Load() == 1 })
	// Readiness finds the token gone: it starts recovery, which must wait
	// for the call in flight (already past the fault layer, inside the
	// real module).
	f.RemoveToken()
	if err := s.Ping(ctx); !errors.Is(err, keystore.ErrTokenUnavailable) {
		t.Fatalf("Ping with the token removed = %v", err)
	}
	if _, err := k.SignContext(ctx, digestOf(crypto.SHA256, "x"), crypto.SHA256); !errors.Is(err, keystore.ErrTokenUnavailable) {
		t.Fatalf("a new call while recovery waits = %v, want ErrTokenUnavailable at once", err)
	}
	if keystore.Generation(s) != gen {
		t.Fatal("the module was re-initialised with a call in flight")
	}
	if err := <-done; err != nil {
		t.Fatalf("the call in flight: %v", err)
	}
	f.SetDelay(0)
	f.InsertToken()
	waitFor(t, "recovery", func() bool { return s.Ping(ctx) == nil })
	signOK(t, k, "after")
}

// TestPINRefusedWhenLoggingInAgain: a token that comes back and refuses the
// PIN gets one C_Login, no retries, a permanent error and readiness false.
func TestPINRefusedWhenLoggingInAgain(t *testing.T) {
	for _, tt := range []struct {
		rv   uint
		want error
	}{
		{pkcs11.CKR_PIN_INCORRECT, keystore.ErrPINIncorrect},
		{pkcs11.CKR_PIN_LOCKED, keystore.ErrPINLocked},
	} {
		t.Run(tt.want.Error(), func(t *testing.T) {
			var cfg keystore.Config
			s, f := openFaulty(t, func(c *keystore.Config) { cfg = *c })
			ctx := context.Background()
			enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
			k, err := s.Signer(ctx, "k", 0, keystore.PurposeSign)
			if err != nil {
				t.Fatal(err)
			}
			logins := f.Logins.Load()
			f.RemoveToken()
			f.FailLogin(tt.rv)
			_ = s.Ping(ctx)
			f.InsertToken()
			waitFor(t, "the PIN to be refused", func() bool { return errors.Is(s.Ping(ctx), tt.want) })
			time.Sleep(20 * cfg.RetryInterval) // a retry loop would log in again meanwhile
			if n := f.Logins.Load() - logins; n != 1 {
				t.Errorf("%d C_Login calls after the PIN was refused, want exactly 1", n)
			}
			_, err = k.SignContext(ctx, digestOf(crypto.SHA256, "x"), crypto.SHA256)
			if !errors.Is(err, tt.want) {
				t.Errorf("Sign = %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), cfg.PIN) {
				t.Errorf("error %q contains the PIN", err)
			}
		})
	}
}

// TestDeadlinesAndCancellation: with a slow token and a full pool, every
// call returns by its deadline (ResourceExhausted-mapped ErrPoolExhausted
// while waiting for a session, DeadlineExceeded while the token works); a
// cancelled call returns at once and its session comes back when the token
// answers; no goroutine outlives the calls.
func TestDeadlinesAndCancellation(t *testing.T) {
	s, f := openFaulty(t, func(c *keystore.Config) { c.MaxSessions = 2 })
	ctx := context.Background()
	enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
	k, err := s.Signer(ctx, "k", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatal(err)
	}
	signOK(t, k, "warm")
	before := runtime.NumGoroutine()

	const delay = 400 * time.Millisecond
	f.SetDelay(delay)
	var (
		wg                      sync.WaitGroup
		mu                      sync.Mutex
		exhausted, deadline, ok int
		late                    []time.Duration
	)
	for range 8 {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := k.SignContext(cctx, digestOf(crypto.SHA256, "x"), crypto.SHA256)
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, keystore.ErrPoolExhausted):
				exhausted++
			case errors.Is(err, context.DeadlineExceeded):
				deadline++
			default:
				t.Errorf("Sign = %v", err)
			}
			if took >= delay {
				late = append(late, took)
			}
		})
	}
	wg.Wait()
	if ok != 0 || exhausted != 6 || deadline != 2 {
		t.Errorf("%d ok, %d pool exhausted, %d deadline exceeded; want 0, 6, 2 (two sessions, eight callers)", ok, exhausted, deadline)
	}
	if len(late) > 0 {
		t.Errorf("calls waited for the token, not their deadline: %v", late)
	}

	// Cancelled mid-call: back at once; the session follows when the
	// token answers.
	waitFor(t, "the abandoned calls to finish", func() bool { inUse, _ := s.PoolStats(); return inUse == 0 })
	signs := f.Signs.Load()
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := k.SignContext(cctx, digestOf(crypto.SHA256, "x"), crypto.SHA256)
		errc <- err
	}()
	waitFor(t, "the call in flight", func() bool {
		return f.Signs.Load() > signs && func() bool { inUse, _ := s.PoolStats(); return inUse >= 1 }()
	})
	start := time.Now()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Sign = %v", err)
	}
	if took := time.Since(start); took >= delay {
		t.Errorf("cancelled call returned after %v, the token's delay", took)
	}
	f.SetDelay(0)
	waitFor(t, "sessions to come back", func() bool { inUse, waiting := s.PoolStats(); return inUse == 0 && waiting == 0 })
	signOK(t, k, "after")
	waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}
