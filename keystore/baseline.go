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
	if concurrency < 1 || d <= 0 {
		return 0, errors.New("keystore: baseline needs concurrency ≥ 1 and a positive duration")
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
			err := k.rawSignLoop(ctx, mech, data, deadline, &count)
			if err != nil {
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

// rawSignLoop signs on a session of its own (object handles are valid in
// every session of the application) until the deadline.
func (k *KeySigner) rawSignLoop(ctx context.Context, mech *pkcs11.Mechanism, data []byte, deadline time.Time, count *atomic.Int64) error {
	p := k.s.p
	sh, err := p.OpenSession(k.s.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return p11Error("C_OpenSession", err)
	}
	defer p.CloseSession(sh)
	mechs := []*pkcs11.Mechanism{mech}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := p.SignInit(sh, mechs, k.h); err != nil {
			return p11Error("C_SignInit", err)
		}
		if _, err := p.Sign(sh, data); err != nil {
			return p11Error("C_Sign", err)
		}
		count.Add(1)
	}
	return nil
}

// DigestInfoPrefixSHA256 is the PKCS#1 v1.5 DigestInfo prefix for SHA-256.
var DigestInfoPrefixSHA256 = hashes[crypto.SHA256].prefix
