package keystore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/miekg/pkcs11"
)

// KeyDecrypter decrypts on the token with one RSA key version. It is safe
// for concurrent use.
type KeyDecrypter struct {
	v   Version
	s   *Store
	h   pkcs11.ObjectHandle
	gen uint64          // module generation of h
	ctx context.Context // from Store.Decrypter: bounds session waits
}

// Public implements crypto.Decrypter.
func (k *KeyDecrypter) Public() crypto.PublicKey { return k.v.Public }

// Version is the key version that decrypts.
func (k *KeyDecrypter) Version() Version { return k.v }

// Decrypt implements crypto.Decrypter (nil opts or *rsa.PKCS1v15DecryptOptions:
// PKCS#1 v1.5; *rsa.OAEPOptions: OAEP). OAEP parameters the token refuses
// (SoftHSM 2.6 takes only SHA-1) give ErrUnsupportedAlgorithm; the caller
// can then use DecryptRaw and unpad in software. SoftHSM 2.6 also fails OAEP
// with a non-empty label (CKR_GENERAL_ERROR from C_Decrypt); CMS never uses
// one.
func (k *KeyDecrypter) Decrypt(rnd io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return k.DecryptContext(k.ctx, rnd, msg, opts)
}

// DecryptContext is Decrypt with a per-call context bounding the session wait.
func (k *KeyDecrypter) DecryptContext(ctx context.Context, rnd io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	switch o := opts.(type) {
	case nil:
		return k.decrypt(ctx, pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), msg)
	case *rsa.PKCS1v15DecryptOptions: //nolint:staticcheck // legacy PKCS#1 v1.5 key transport, decrypted inside the token
		out, err := k.decrypt(ctx, pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), msg)
		if o.SessionKeyLen > 0 && (err != nil || len(out) != o.SessionKeyLen) {
			// As rsa.DecryptPKCS1v15SessionKey intends: a bad padding
			// yields a random key, so the failure shows up later as a
			// failed content decryption, not as an oracle here. The token's
			// timing is beyond our control; for constant time use
			// DecryptRaw and unpad in software.
			if rnd == nil {
				rnd = rand.Reader
			}
			key := make([]byte, o.SessionKeyLen)
			if _, rerr := io.ReadFull(rnd, key); rerr != nil {
				return nil, fmt.Errorf("keystore: random session key: %w", rerr)
			}
			return key, nil
		}
		return out, err
	case *rsa.OAEPOptions:
		return k.decryptOAEP(ctx, msg, o)
	}
	return nil, fmt.Errorf("%w: decrypter options %T", ErrUnsupportedAlgorithm, opts)
}

func (k *KeyDecrypter) decryptOAEP(ctx context.Context, msg []byte, o *rsa.OAEPOptions) ([]byte, error) {
	p := oaepParams{hash: o.Hash, mgf: o.MGFHash}
	if p.mgf == 0 {
		p.mgf = p.hash
	}
	hi, ok1 := hashes[p.hash]
	mi, ok2 := hashes[p.mgf]
	if !ok1 || !ok2 || !k.s.caps.RSAOAEP {
		return nil, fmt.Errorf("%w: OAEP with %v/MGF1-%v", ErrUnsupportedAlgorithm, p.hash, p.mgf)
	}
	if ok, known := k.s.oaepKnown(p); known && !ok {
		return nil, fmt.Errorf("%w: token refuses OAEP with %v/MGF1-%v", ErrUnsupportedAlgorithm, p.hash, p.mgf)
	}
	var label []byte
	if len(o.Label) > 0 {
		label = o.Label
	}
	mech := pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP,
		pkcs11.NewOAEPParams(hi.mech, mi.mgf, pkcs11.CKZ_DATA_SPECIFIED, label))
	out, initErr, err := k.run(ctx, mech, msg)
	switch {
	case initErr != nil && rvIs(initErr, pkcs11.CKR_ARGUMENTS_BAD, pkcs11.CKR_MECHANISM_PARAM_INVALID, pkcs11.CKR_MECHANISM_INVALID):
		// Learnt on first use: the token lists OAEP but not these
		// parameters (SoftHSM 2.6 and SHA-256). Remember, fail fast after.
		k.s.oaepLearn(p, false)
		return nil, fmt.Errorf("%w: token refuses OAEP with %v/MGF1-%v: %w", ErrUnsupportedAlgorithm, p.hash, p.mgf, err)
	case initErr == nil && err == nil:
		k.s.oaepLearn(p, true)
	}
	return out, err
}

// SupportsOAEP reports whether the token decrypts RSA-OAEP with hash (and
// MGF1 with the same hash). The mechanism list cannot tell: SoftHSM 2.6
// lists CKM_RSA_PKCS_OAEP yet refuses SHA-256 parameters. So the answer is
// learnt once per Store by a trial decryption with this key of a message
// encrypted here, or from the first real Decrypt, and remembered.
func (k *KeyDecrypter) SupportsOAEP(hash crypto.Hash) bool {
	p := oaepParams{hash: hash, mgf: hash}
	if ok, known := k.s.oaepKnown(p); known {
		return ok
	}
	pub, ok := k.v.Public.(*rsa.PublicKey)
	if _, known := hashes[hash]; !ok || !known || !hash.Available() || !k.s.caps.RSAOAEP {
		return false
	}
	probe := []byte("pecet OAEP probe")
	ct, err := rsa.EncryptOAEP(hash.New(), rand.Reader, pub, probe, nil)
	if err != nil {
		return false
	}
	out, err := k.decryptOAEP(k.ctx, ct, &rsa.OAEPOptions{Hash: hash})
	return err == nil && bytes.Equal(out, probe)
}

// DecryptRaw applies the private-key operation only (CKM_RSA_X_509:
// msg^d mod n), returning the modulus-length block with no padding removed.
// It is for callers that unpad in constant time themselves, e.g. OAEP with
// SHA-256 on a token that offers only OAEP-SHA1.
func (k *KeyDecrypter) DecryptRaw(ctx context.Context, msg []byte) ([]byte, error) {
	pub, ok := k.v.Public.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: raw decryption needs an RSA key", ErrUnsupportedAlgorithm)
	}
	size := pub.Size()
	if len(msg) > size {
		return nil, fmt.Errorf("keystore: ciphertext is %d bytes, modulus %d", len(msg), size)
	}
	in := make([]byte, size)
	copy(in[size-len(msg):], msg)
	out, _, err := k.run(ctx, pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil), in)
	if err != nil {
		return nil, err
	}
	if len(out) > size {
		return nil, fmt.Errorf("keystore: token returned %d bytes for a %d-byte modulus", len(out), size)
	}
	// Tokens differ on whether leading zero bytes are kept; give the full
	// block either way.
	block := make([]byte, size)
	copy(block[size-len(out):], out)
	return block, nil
}

func (k *KeyDecrypter) decrypt(ctx context.Context, mech *pkcs11.Mechanism, msg []byte) ([]byte, error) {
	out, _, err := k.run(ctx, mech, msg)
	return out, err
}

// run does one C_DecryptInit/C_Decrypt on a pooled session. initErr is the
// C_DecryptInit failure, if that is where it failed (parameters refused).
func (k *KeyDecrypter) run(ctx context.Context, mech *pkcs11.Mechanism, msg []byte) (out []byte, initErr, err error) {
	var res []byte
	err = k.s.withKey(ctx, k.v, k.h, k.gen, func(sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (err error) {
		if err := k.s.p.DecryptInit(sh, []*pkcs11.Mechanism{mech}, h); err != nil {
			return &initError{p11Error("C_DecryptInit", err)}
		}
		res, err = k.s.p.Decrypt(sh, msg)
		return p11Error("C_Decrypt", err)
	})
	if err != nil {
		k.s.forgetOnHandleError(k.v.Alias, err)
		// The failure's place travels in the error, not in a variable the
		// closure sets: a call abandoned at its deadline may still be
		// running it.
		var ie *initError
		if errors.As(err, &ie) {
			initErr = ie.err
		}
		return nil, initErr, err
	}
	return res, nil, nil
}

// initError marks a C_DecryptInit failure (parameters refused).
type initError struct{ err error }

func (e *initError) Error() string { return e.err.Error() }
func (e *initError) Unwrap() error { return e.err }
