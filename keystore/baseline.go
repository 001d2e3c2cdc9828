package keystore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Baseline measures the raw token signing rate of this key version, in
// signatures per second: concurrency goroutines, each on a session of its own
// outside the pool, call C_SignInit/C_Sign over a fixed SHA-256 digest for
// the duration d and do nothing else (no pool, no cache, no CMS, no
// conversion of the result). It is the physical limit that pecet's own
// throughput is quoted against as a ratio, measured in the same run on the
// same token.
func (k *KeySigner) Baseline(ctx context.Context, concurrency int, d time.Duration) (float64, error) {
	if err := checkBaseline(concurrency, d); err != nil {
		return 0, err
	}
	v := k.v
	digest := sha256.Sum256([]byte("pecet baseline"))
	var mech *pkcs11.Mechanism
	data := digest[:]
	switch v.Public.(type) {
	case *rsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
		data = append(append([]byte{}, DigestInfoPrefixSHA256...), digest[:]...)
	case *ecdsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
	default:
		return 0, fmt.Errorf("%w: key type %T", ErrUnsupportedAlgorithm, v.Public)
	}
	mechs := []*pkcs11.Mechanism{mech}
	return k.s.rawRate(ctx, concurrency, d, func(sh pkcs11.SessionHandle) error {
		if err := k.s.p.SignInit(sh, mechs, k.h); err != nil {
			return p11Error("C_SignInit", err)
		}
		if _, err := k.s.p.Sign(sh, data); err != nil {
			return p11Error("C_Sign", err)
		}
		return nil
	})
}

func checkBaseline(concurrency int, d time.Duration) error {
	if concurrency < 1 || d <= 0 {
		return errors.New("keystore: baseline needs concurrency ≥ 1 and a positive duration")
	}
	return nil
}

// rawRate runs op over and over in concurrency goroutines, each on a
// session of its own outside the pool (object handles are valid in every
// session of the application), until d has passed, and returns the rate in
// operations per second. op is one raw token operation and nothing else.
func (s *Store) rawRate(ctx context.Context, concurrency int, d time.Duration, op func(pkcs11.SessionHandle) error) (float64, error) {
	var (
		count    atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.rawLoop(ctx, deadline, &count, op); err != nil {
				errOnce.Do(func() { firstErr = err })
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(count.Load()) / time.Since(start).Seconds(), nil
}

func (s *Store) rawLoop(ctx context.Context, deadline time.Time, count *atomic.Int64, op func(pkcs11.SessionHandle) error) error {
	sh, err := s.p.OpenSession(s.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return p11Error("C_OpenSession", err)
	}
	defer s.p.CloseSession(sh) //nolint:errcheck // a read-only probe session: nothing to lose if closing it fails
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := op(sh); err != nil {
			return err
		}
		count.Add(1)
	}
	return nil
}

// DigestInfoPrefixSHA256 is the PKCS#1 v1.5 DigestInfo prefix for SHA-256.
var DigestInfoPrefixSHA256 = hashes[crypto.SHA256].prefix
