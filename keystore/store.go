package keystore

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
)

// CONTRACT STUB: the method set below is the contract the server is written
// against; the implementation replaces the bodies.

var errTODO = errors.New("keystore: not implemented")

// Store is an open, logged-in token.
type Store struct{}

// Open loads the module (once per process and path), finds the token, logs in
// exactly once and starts the session pool.
func Open(ctx context.Context, cfg Config) (*Store, error) { return nil, errTODO }

// InitToken initialises a fresh token in the first free slot with the given
// label, SO PIN and user PIN (SoftHSM dev and test tokens).
func InitToken(modulePath, label, soPIN, userPIN string) error { return errTODO }

// Close releases the sessions, logs out and finalises the module when this is
// its last user in the process.
func (s *Store) Close() error { return errTODO }

// Ping checks that the token is present and logged in (readiness).
func (s *Store) Ping(ctx context.Context) error { return errTODO }

// PoolStats reports sessions in use and callers waiting (metrics).
func (s *Store) PoolStats() (inUse, waiting int) { return 0, 0 }

// CreateKey generates version 1 of a new alias, PENDING_CERTIFICATE.
func (s *Store) CreateKey(ctx context.Context, alias string, p Purpose, a Algorithm) (Version, error) {
	return Version{}, errTODO
}

// ImportCertificate stores the chain (leaf first) for a version after
// checking the leaf's public key is the version's key; the version becomes
// ENABLED, and primary when the alias had none.
func (s *Store) ImportCertificate(ctx context.Context, alias string, version int, chain []*x509.Certificate) (Version, error) {
	return Version{}, errTODO
}

// ListKeys lists every alias on the token.
func (s *Store) ListKeys(ctx context.Context) ([]Key, error) { return nil, errTODO }

// GetKey returns one alias.
func (s *Store) GetKey(ctx context.Context, alias string) (Key, error) { return Key{}, errTODO }

// Signer returns a crypto.Signer for an ENABLED version (0 = primary) of a key
// with the given purpose. ctx bounds waits for a pooled session.
func (s *Store) Signer(ctx context.Context, alias string, version int, p Purpose) (*KeySigner, error) {
	return nil, errTODO
}

// Decrypter returns a crypto.Decrypter for an ENABLED version of a DECRYPT key.
func (s *Store) Decrypter(ctx context.Context, alias string, version int) (*KeyDecrypter, error) {
	return nil, errTODO
}

// KeySigner signs on the token.
type KeySigner struct{ v Version }

// Public implements crypto.Signer.
func (k *KeySigner) Public() crypto.PublicKey { return k.v.Public }

// Version is the key version that signs.
func (k *KeySigner) Version() Version { return k.v }

// Sign implements crypto.Signer: RSA PKCS#1 v1.5, RSA-PSS, ECDSA (ASN.1 output).
func (k *KeySigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return nil, errTODO
}

// KeyDecrypter decrypts on the token.
type KeyDecrypter struct{ v Version }

// Public implements crypto.Decrypter.
func (k *KeyDecrypter) Public() crypto.PublicKey { return k.v.Public }

// Version is the key version that decrypts.
func (k *KeyDecrypter) Version() Version { return k.v }

// Decrypt implements crypto.Decrypter (nil opts or *rsa.PKCS1v15DecryptOptions:
// PKCS#1 v1.5; *rsa.OAEPOptions: OAEP).
func (k *KeyDecrypter) Decrypt(_ io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return nil, errTODO
}
