package keystore_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func digestOf(h crypto.Hash, msg string) []byte {
	d := h.New()
	d.Write([]byte(msg))
	return d.Sum(nil)
}

func TestSign(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	enabledKey(t, s, "rsa", keystore.PurposeSign, keystore.RSA2048)
	enabledKey(t, s, "p256", keystore.PurposeSign, keystore.ECP256)
	enabledKey(t, s, "p384", keystore.PurposeTimestamp, keystore.ECP384)

	tests := []struct {
		name    string
		alias   string
		purpose keystore.Purpose
		opts    crypto.SignerOpts
	}{
		{"PKCS1v15 SHA-256", "rsa", keystore.PurposeSign, crypto.SHA256},
		{"PKCS1v15 SHA-384", "rsa", keystore.PurposeSign, crypto.SHA384},
		{"PKCS1v15 SHA-512", "rsa", keystore.PurposeSign, crypto.SHA512},
		{"PSS SHA-256 salt=hash", "rsa", keystore.PurposeSign, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}},
		{"PSS SHA-384 salt auto", "rsa", keystore.PurposeSign, &rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: rsa.PSSSaltLengthAuto}},
		{"PSS SHA-512 salt 20", "rsa", keystore.PurposeSign, &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: 20}},
		{"ECDSA P-256 SHA-256", "p256", keystore.PurposeSign, crypto.SHA256},
		{"ECDSA P-384 SHA-384", "p384", keystore.PurposeTimestamp, crypto.SHA384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := s.Signer(ctx, tt.alias, 0, tt.purpose)
			if err != nil {
				t.Fatal(err)
			}
			if v := k.Version(); v.Version != 1 || !v.Primary || v.State != keystore.StateEnabled {
				t.Errorf("signer version %+v", v)
			}
			digest := digestOf(tt.opts.HashFunc(), tt.name)
			sig, err := k.Sign(rand.Reader, digest, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			switch pub := k.Public().(type) {
			case *rsa.PublicKey:
				if pss, ok := tt.opts.(*rsa.PSSOptions); ok {
					err = rsa.VerifyPSS(pub, pss.Hash, digest, sig, pss)
				} else {
					err = rsa.VerifyPKCS1v15(pub, tt.opts.HashFunc(), digest, sig)
				}
			case *ecdsa.PublicKey:
				if !ecdsa.VerifyASN1(pub, digest, sig) {
					err = errors.New("ECDSA signature does not verify")
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("x509.CreateCertificate", func(t *testing.T) {
		// The crypto.Signer contract end to end: a self-signed certificate
		// made by the token key verifies under its own public key.
		for _, alias := range []string{"rsa", "p256"} {
			k, err := s.Signer(ctx, alias, 0, keystore.PurposeSign)
			if err != nil {
				t.Fatal(err)
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: alias},
				NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
			if err != nil {
				t.Fatalf("%s: %v", alias, err)
			}
			c, _ := x509.ParseCertificate(der)
			if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
				t.Errorf("%s: %v", alias, err)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		if _, err := s.CreateKey(ctx, "pending", keystore.PurposeSign, keystore.ECP256); err != nil {
			t.Fatal(err)
		}
		signerErrs := []struct {
			alias   string
			version int
			purpose keystore.Purpose
			want    error
		}{
			{"rsa", 0, keystore.PurposeTimestamp, keystore.ErrWrongPurpose},
			{"rsa", 0, keystore.PurposeDecrypt, keystore.ErrWrongPurpose},
			{"rsa", 2, keystore.PurposeSign, keystore.ErrVersionNotFound},
			{"missing", 0, keystore.PurposeSign, keystore.ErrKeyNotFound},
			{"BAD", 0, keystore.PurposeSign, keystore.ErrInvalidAlias},
			{"pending", 0, keystore.PurposeSign, keystore.ErrNoPrimary},
			{"pending", 1, keystore.PurposeSign, keystore.ErrKeyNotEnabled},
		}
		for _, e := range signerErrs {
			if _, err := s.Signer(ctx, e.alias, e.version, e.purpose); !errors.Is(err, e.want) {
				t.Errorf("Signer(%s, %d, %s) = %v, want %v", e.alias, e.version, e.purpose, err, e.want)
			}
		}
		if _, err := s.Decrypter(ctx, "rsa", 0); !errors.Is(err, keystore.ErrWrongPurpose) {
			t.Errorf("Decrypter(sign key) = %v, want ErrWrongPurpose", err)
		}
		k, _ := s.Signer(ctx, "rsa", 0, keystore.PurposeSign)
		if _, err := k.Sign(nil, make([]byte, 20), crypto.SHA256); err == nil {
			t.Error("Sign accepted a 20-byte digest for SHA-256")
		}
		e, _ := s.Signer(ctx, "p256", 0, keystore.PurposeSign)
		if _, err := e.Sign(nil, make([]byte, 32), &rsa.PSSOptions{Hash: crypto.SHA256}); !errors.Is(err, keystore.ErrUnsupportedAlgorithm) {
			t.Errorf("ECDSA with PSS options = %v", err)
		}
	})
}

// TestConcurrentSign: many goroutines share a small pool; no session is used
// by two at once (the race detector and the token would notice) and every
// signature verifies.
func TestConcurrentSign(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	cfg.MaxSessions = 4
	ctx := context.Background()
	s, err := keystore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := enabledKey(t, s, "busy", keystore.PurposeSign, keystore.ECP256)
	pub := v.Public.(*ecdsa.PublicKey)

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			k, err := s.Signer(ctx, "busy", 0, keystore.PurposeSign)
			if err != nil {
				errs <- err
				return
			}
			d := digestOf(crypto.SHA256, fmt.Sprint(i))
			sig, err := k.Sign(nil, d, crypto.SHA256)
			if err != nil {
				errs <- err
				return
			}
			if !ecdsa.VerifyASN1(pub, d, sig) {
				errs <- fmt.Errorf("signature %d does not verify", i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if inUse, waiting := s.PoolStats(); inUse != 0 || waiting != 0 {
		t.Errorf("PoolStats after = %d in use, %d waiting", inUse, waiting)
	}
}

func TestPoolExhausted(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	cfg.MaxSessions = 1
	ctx := context.Background()
	s, err := keystore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
	k, err := s.Signer(ctx, "k", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatal(err)
	}

	release, err := keystore.HoldSession(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	done := make(chan error)
	go func() {
		_, err := k.SignContext(short, digestOf(crypto.SHA256, "x"), crypto.SHA256)
		done <- err
	}()
	// While it waits, the pool reports it.
	testtool.Eventually(t, time.Second, func() bool {
		inUse, waiting := s.PoolStats()
		return inUse == 1 && waiting == 1
	}, "PoolStats showing one waiter")
	err = <-done
	if !errors.Is(err, keystore.ErrPoolExhausted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sign with pool held = %v, want ErrPoolExhausted and DeadlineExceeded", err)
	}
	release()
	if _, err := k.SignContext(ctx, digestOf(crypto.SHA256, "x"), crypto.SHA256); err != nil {
		t.Fatalf("Sign after release: %v", err)
	}
}

// TestSessionLost: a session the token reports lost is dropped and the
// signature made on a fresh one; a second loss in a row is an error.
func TestSessionLost(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	ctx := context.Background()
	s, f, err := openFault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
	k, err := s.Signer(ctx, "k", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatal(err)
	}
	d := digestOf(crypto.SHA256, "x")

	f.LoseSessions(1, pkcs11.CKR_SESSION_HANDLE_INVALID)
	signs, closed := f.Signs.Load(), f.Closed.Load()
	sig, err := k.Sign(nil, d, crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(v.Public.(*ecdsa.PublicKey), d, sig) {
		t.Fatalf("Sign after one lost session: %v", err)
	}
	if got := f.Signs.Load() - signs; got != 2 {
		t.Errorf("%d C_Sign calls, want 2 (one lost, one retried)", got)
	}
	if f.Closed.Load() == closed {
		t.Error("lost session was not discarded")
	}

	f.LoseSessions(2, pkcs11.CKR_SESSION_CLOSED)
	if _, err := k.Sign(nil, d, crypto.SHA256); !errors.Is(err, keystore.ErrTokenUnavailable) {
		t.Errorf("Sign after two lost sessions = %v, want ErrTokenUnavailable", err)
	}
	f.LoseSessions(0, 0)
	if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
		t.Errorf("Sign after recovery: %v", err)
	}
}
