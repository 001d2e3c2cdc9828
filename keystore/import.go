package keystore

import (
	"context"
	"crypto/rsa"
	"fmt"
	"math/big"
	"time"

	"github.com/miekg/pkcs11"
)

// ImportKey puts an existing RSA private key on the token as version 1 of a
// new alias, PENDING_CERTIFICATE, with the same attributes a generated key
// gets: a token object, CKA_SENSITIVE, not extractable, allowed only what
// its purpose needs. Once imported the key never leaves the token again.
//
// It is for tests with published key pairs (the Wycheproof vectors) and for
// migrating a key from a software store or an older HSM. Generating keys on
// the token (CreateKey) is always better: an imported key existed outside
// the HSM once. Only RSA 2048, 3072 and 4096 bits are accepted.
func (s *Store) ImportKey(ctx context.Context, alias string, p Purpose, key *rsa.PrivateKey) (Version, error) {
	if err := checkAlias(alias); err != nil {
		return Version{}, err
	}
	if key == nil || len(key.Primes) != 2 {
		return Version{}, fmt.Errorf("%w: import needs a two-prime RSA key", ErrUnsupportedAlgorithm)
	}
	var a Algorithm
	switch key.N.BitLen() {
	case 2048:
		a = RSA2048
	case 3072:
		a = RSA3072
	case 4096:
		a = RSA4096
	default:
		return Version{}, fmt.Errorf("%w: RSA-%d (import takes 2048, 3072 or 4096 bits)", ErrUnsupportedAlgorithm, key.N.BitLen())
	}
	if err := checkPurposeAlgorithm(p, a); err != nil {
		return Version{}, err
	}
	if err := key.Validate(); err != nil {
		return Version{}, fmt.Errorf("%w: invalid RSA key: %w", ErrUnsupportedAlgorithm, err)
	}
	key.Precompute()
	// The pair is written with C_CreateObject in one session; createAlias
	// adds the metadata and takes the pair away again if that fails.
	return s.createAlias(ctx, alias, p, a, func(sh pkcs11.SessionHandle) (pub, priv pkcs11.ObjectHandle, err error) {
		decrypt := p == PurposeDecrypt
		pubT, privT := keyTemplates(alias, 1, p)
		e := big.NewInt(int64(key.E)).Bytes()
		pub, err = s.p.CreateObject(sh, append(pubT,
			attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			attr(pkcs11.CKA_ENCRYPT, decrypt),
			attr(pkcs11.CKA_MODULUS, key.N.Bytes()),
			attr(pkcs11.CKA_PUBLIC_EXPONENT, e),
		))
		if err != nil {
			return 0, 0, p11Error("C_CreateObject(public key)", err)
		}
		priv, err = s.p.CreateObject(sh, append(privT,
			attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			attr(pkcs11.CKA_MODULUS, key.N.Bytes()),
			attr(pkcs11.CKA_PUBLIC_EXPONENT, e),
			attr(pkcs11.CKA_PRIVATE_EXPONENT, key.D.Bytes()),
			attr(pkcs11.CKA_PRIME_1, key.Primes[0].Bytes()),
			attr(pkcs11.CKA_PRIME_2, key.Primes[1].Bytes()),
			attr(pkcs11.CKA_EXPONENT_1, key.Precomputed.Dp.Bytes()),
			attr(pkcs11.CKA_EXPONENT_2, key.Precomputed.Dq.Bytes()),
			attr(pkcs11.CKA_COEFFICIENT, key.Precomputed.Qinv.Bytes()),
		))
		if err != nil {
			_ = s.p.DestroyObject(sh, pub)
			return 0, 0, p11Error("C_CreateObject(private key)", err)
		}
		return pub, priv, nil
	})
}

// Baseline measures the raw token RSA decryption rate of this key version,
// in private-key operations per second, as KeySigner.Baseline does for
// signatures: concurrency goroutines, each on a session of its own outside
// the pool, call C_DecryptInit/C_Decrypt with CKM_RSA_X_509 on a fixed
// block for the duration d and nothing else. Envelope decryption is quoted
// against it as a ratio.
func (k *KeyDecrypter) Baseline(ctx context.Context, concurrency int, d time.Duration) (float64, error) {
	if err := checkBaseline(concurrency, d); err != nil {
		return 0, err
	}
	pub, ok := k.v.Public.(*rsa.PublicKey)
	if !ok {
		return 0, fmt.Errorf("%w: raw decryption needs an RSA key", ErrUnsupportedAlgorithm)
	}
	// Any block below the modulus will do: 0x00 0x02 then a constant.
	block := make([]byte, pub.Size())
	for i := 2; i < len(block); i++ {
		block[i] = 0x5a
	}
	block[1] = 0x02
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}
	return k.s.rawRate(ctx, concurrency, d, func(sh pkcs11.SessionHandle) error {
		if err := k.s.p.DecryptInit(sh, mech, k.h); err != nil {
			return p11Error("C_DecryptInit", err)
		}
		if _, err := k.s.p.Decrypt(sh, block); err != nil {
			return p11Error("C_Decrypt", err)
		}
		return nil
	})
}
