package keystore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// KeySigner signs on the token with one key version. It is safe for
// concurrent use: each Sign takes its own pooled session.
type KeySigner struct {
	v   Version
	s   *Store
	h   pkcs11.ObjectHandle
	gen uint64          // module generation of h
	ctx context.Context // from Store.Signer: bounds session waits of Sign
}

// Public implements crypto.Signer.
func (k *KeySigner) Public() crypto.PublicKey { return k.v.Public }

// Version is the key version that signs.
func (k *KeySigner) Version() Version { return k.v }

// Sign implements crypto.Signer: RSA PKCS#1 v1.5, RSA-PSS, ECDSA (ASN.1
// output, as crypto/ecdsa). The random source is unused: the token draws its
// own randomness for PSS salts and ECDSA nonces.
func (k *KeySigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(k.ctx, digest, opts)
}

// SignContext is Sign with a per-call context bounding the session wait and
// the call (see Store.withSession).
func (k *KeySigner) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("keystore: nil SignerOpts")
	}
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("keystore: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	var (
		mech *pkcs11.Mechanism
		data = digest
	)
	switch k.v.Public.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			hi, ok := hashes[h]
			if !ok {
				return nil, fmt.Errorf("%w: PSS with hash %v", ErrUnsupportedAlgorithm, h)
			}
			salt := pss.SaltLength
			switch {
			case salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash:
				// Equal to the hash length: what RFC 8017 recommends and
				// what every verifier (Auto or EqualsHash) accepts.
				salt = h.Size()
			case salt < 0:
				return nil, fmt.Errorf("keystore: PSS salt length %d", salt)
			}
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(hi.mech, hi.mgf, uint(salt)))
		} else {
			// CKM_RSA_PKCS pads and signs what it is given, so the
			// DigestInfo is ours to add. Hash 0 signs the digest bare, as
			// rsa.SignPKCS1v15 does.
			if h != 0 {
				hi, ok := hashes[h]
				if !ok {
					return nil, fmt.Errorf("%w: PKCS#1 v1.5 with hash %v", ErrUnsupportedAlgorithm, h)
				}
				data = append(append(make([]byte, 0, len(hi.prefix)+len(digest)), hi.prefix...), digest...)
			}
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
		}
	case *ecdsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			return nil, fmt.Errorf("%w: PSS options for an ECDSA key", ErrUnsupportedAlgorithm)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
	default:
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupportedAlgorithm, k.v.Public)
	}

	var sig []byte
	err := k.s.withKey(ctx, k.v, k.h, k.gen, func(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (err error) {
		if err := k.s.p.SignInit(sh, []*pkcs11.Mechanism{mech}, h); err != nil {
			return p11Error("C_SignInit", err)
		}
		sig, err = k.s.p.Sign(sh, data)
		return p11Error("C_Sign", err)
	})
	if err != nil {
		k.s.forgetOnHandleError(k.v.Alias, err)
		return nil, err
	}
	if _, ok := k.v.Public.(*ecdsa.PublicKey); ok {
		return ecdsaDER(sig)
	}
	return sig, nil
}

// ecdsaDER turns PKCS#11's r||s (each the curve's byte length) into the
// ASN.1 SEQUENCE { r INTEGER, s INTEGER } that crypto/ecdsa and X.509 use.
func ecdsaDER(raw []byte) ([]byte, error) {
	der, err := cms.ECDSARawToDER(raw)
	if err != nil {
		return nil, fmt.Errorf("keystore: token returned a %d-byte ECDSA signature: %w", len(raw), err)
	}
	return der, nil
}

// forgetOnHandleError drops a cached alias whose object handle the token no
// longer knows (another process destroyed or replaced the object), so the
// next Signer or Decrypter reads the token again.
func (s *Store) forgetOnHandleError(alias string, err error) {
	if rvIs(err, pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
		s.cache.invalidate(alias)
	}
}
