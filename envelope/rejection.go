package envelope

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
)

// Deterministic implicit rejection.
//
// A rejected RSA block (bad padding, a content key of the wrong length, a
// token that refuses the OAEP block) continues with a synthetic content key
// that then fails to decrypt the content like any wrong key. The synthetic
// key must be a function of the message, not fresh randomness: with a fresh
// key, repeating one CBC message whose block is bad gives a different key
// each time, and about 1 in 256 of them passes the CBC padding check, while
// a well-formed block carrying a wrong key gives the same answer every time.
// Counting successes over repeats then tells the two apart, which is the
// Bleichenbacher oracle again (docs/security.md, "Decryption without an
// oracle").
//
// So, as the IETF draft on implicit rejection for RSA PKCS#1 v1.5
// (draft-irtf-cfrg-rsa-guidance) and OpenSSL 3.2+ do, the synthetic key is a
// PRF of the encrypted key under a secret bound to the private key. The draft
// keys its KDF with a hash of the private exponent; on an HSM the exponent
// cannot be read, so the secret is made on the token with the operation a
// DECRYPT key already allows, the raw RSA private-key operation:
//
//	m      = 0x00 || MGF1-SHA-256("pecet implicit rejection v1" || n)  (k bytes, so m < n)
//	secret = SHA-256("pecet implicit rejection secret" || m^d mod n)
//
// m^d is an RSA full-domain-hash signature of a fixed label: nobody without
// the private key can compute it (RSA-FDH is unforgeable), every replica
// sharing the token derives the same secret (so round-robin calls answer
// alike), it needs no new object or attribute on the token and works for
// every existing key version, and it changes with the key on rotation.
// Sending m as an encrypted key makes the token compute m^d, but Decrypt
// never reveals a decrypted block, only whether the content opened.
// An HMAC key made on the token would do as well but needs a new object per
// key version, created and backed up with it; a signature mechanism is not
// allowed on DECRYPT keys.
//
// The secret is computed once per key (by public key) per process and kept
// in memory; rejectionSecret runs for every unwrap, valid or not, so the work
// done does not depend on the padding.
//
// An HSM whose policy forbids raw RSA (CKM_RSA_X_509) runs with token.oaep:
// token, and there the secret cannot be made on the token. In that mode
// alone a refused raw operation falls back to a random secret per key and
// process: a message is still rejected the same way every time by one
// replica, but replicas differ, so repeating a CBC message across R
// replicas meets up to R synthetic keys. GCM, the default cipher, never
// opens under any of them (docs/security.md).

// rejectionLabel and rejectionSecretLabel separate the derivations.
const (
	rejectionLabel       = "pecet implicit rejection v1"
	rejectionSecretLabel = "pecet implicit rejection secret" //nolint:gosec // a KDF label, no credential
	syntheticKeyLabel    = "pecet synthetic content key"
)

// maxRejectionSecrets bounds the cache: a few keys with a few versions
// each in practice; past the bound the cache starts afresh.
const maxRejectionSecrets = 1024

// rejectionCache maps the SHA-256 of a public key (n and e) to its secret.
type rejectionCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte][]byte
}

var rejectionSecrets rejectionCache

func pubID(pub *rsa.PublicKey) [sha256.Size]byte {
	h := sha256.New()
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(pub.E))
	h.Write(e[:])
	h.Write(pub.N.Bytes())
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

// rejectionPoint is m above, for the k-byte modulus of pub.
func rejectionPoint(pub *rsa.PublicKey) []byte {
	k := pub.Size()
	m := make([]byte, k)
	seed := append([]byte(rejectionLabel), pub.N.FillBytes(make([]byte, k))...)
	mgf1XOR(m[1:], sha256.New(), seed)
	return m
}

// rejectionSecret returns the implicit-rejection secret of key (see
// above), from the cache or computed on the token. Its only errors are
// token failures, which do not depend on any message.
//
// local allows the per-process random secret when the token refuses the
// raw operation (OAEPToken mode only, see above).
func rejectionSecret(ctx context.Context, key Key, pub *rsa.PublicKey, local bool) ([]byte, error) {
	id := pubID(pub)
	rejectionSecrets.mu.Lock()
	s, ok := rejectionSecrets.m[id]
	rejectionSecrets.mu.Unlock()
	if ok {
		return s, nil
	}
	sig, err := key.DecryptRaw(ctx, rejectionPoint(pub))
	switch {
	case err != nil && local && ctx.Err() == nil:
		s = make([]byte, sha256.Size)
		if _, err := rand.Read(s); err != nil {
			return nil, fmt.Errorf("envelope: implicit-rejection secret: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("envelope: implicit-rejection secret: raw RSA: %w", err)
	case len(sig) != pub.Size():
		clear(sig)
		return nil, fmt.Errorf("envelope: implicit-rejection secret: raw RSA returned %d bytes for a %d-byte modulus", len(sig), pub.Size())
	default:
		h := sha256.New()
		h.Write([]byte(rejectionSecretLabel))
		h.Write(sig)
		clear(sig)
		s = h.Sum(nil)
	}
	rejectionSecrets.mu.Lock()
	if rejectionSecrets.m == nil || len(rejectionSecrets.m) >= maxRejectionSecrets {
		rejectionSecrets.m = map[[sha256.Size]byte][]byte{}
	}
	rejectionSecrets.m[id] = s
	rejectionSecrets.mu.Unlock()
	return s, nil
}

// syntheticKey is the content key of keyLen bytes (at most 32) used when
// the RSA block of encryptedKey is rejected: HMAC-SHA-256 under the key's
// secret over a label, the key length, the key transport and the encrypted
// key, so one message is rejected the same way every time.
func syntheticKey(secret []byte, kt KeyTransport, encryptedKey []byte, keyLen int) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(syntheticKeyLabel))
	mac.Write([]byte{0, byte(keyLen)})
	mac.Write([]byte(kt))
	mac.Write([]byte{0})
	mac.Write(encryptedKey)
	sum := mac.Sum(nil)
	out := make([]byte, keyLen)
	copy(out, sum)
	clear(sum)
	return out
}
