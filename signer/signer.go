package signer

import (
	"crypto"
	"crypto/x509"
	"errors"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// CONTRACT STUB: the API below is what the server is written against; the
// implementation replaces the bodies.

// Sentinel errors (errors.Is); the server maps them to gRPC codes.
var (
	// ErrMalformed: the input is not a well-formed CMS SignedData within limits.
	ErrMalformed = errors.New("signer: malformed CMS SignedData")
	// ErrTooLarge: input exceeds a parsing bound (bytes, depth, counts).
	ErrTooLarge = errors.New("signer: input exceeds parsing limits")
	// ErrUnsupportedHash: hash not offered for new signatures (SHA-1, MD5, unknown).
	ErrUnsupportedHash = errors.New("signer: unsupported hash algorithm")
	// ErrDigestLength: a client digest whose length does not fit its hash.
	ErrDigestLength = errors.New("signer: digest length does not match hash")
	// ErrEmptyContent: nothing to sign.
	ErrEmptyContent = errors.New("signer: empty content")
	// ErrNoCertificate: the signing key has no certificate.
	ErrNoCertificate = errors.New("signer: signing key has no certificate")
	// ErrContentMissing: detached signature verified without content or digest.
	ErrContentMissing = errors.New("signer: detached signature needs the content or its digest")
	// ErrKeyMismatch: the certificate's public key is not the signer's key.
	ErrKeyMismatch = errors.New("signer: certificate does not match the signing key")
)

// Options for a new signature.
type Options struct {
	// Hash is SHA-256 (default, when zero), SHA-384 or SHA-512.
	Hash crypto.Hash
	// Attached embeds the content (encapContentInfo eContent); default detached.
	Attached bool
	// SigningTime goes into the signing-time attribute; zero means now.
	SigningTime time.Time
}

// Sign makes a CMS SignedData (DER) over content with signed attributes
// content-type, message-digest, signing-time and signing-certificate-v2. The
// chain is leaf first; every certificate in it is included.
func Sign(content []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) ([]byte, error) {
	return nil, errors.New("signer: not implemented")
}

// SignDigest makes a detached CMS SignedData over a digest the client
// computed with opts.Hash; the content never reaches pecet.
func SignDigest(digest []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) ([]byte, error) {
	return nil, errors.New("signer: not implemented")
}

// VerifyOptions say what to verify against.
type VerifyOptions struct {
	// Content is the detached content; Digest (with DigestHash) the client's
	// digest of it, as an alternative. Ignored for attached signatures.
	Content    []byte
	Digest     []byte
	DigestHash crypto.Hash
	// Validator judges the signer's chain; nil means no chain check (the
	// verdict is then INDETERMINATE with UNTRUSTED_ROOT).
	Validator policy.Validator
	// At overrides the time the chain is judged at; zero means the signing
	// time attribute, else now.
	At time.Time
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Verify parses a CMS SignedData and returns a verdict: digest, signature
// and (through the Validator) the signer's chain. Only a malformed or
// over-limit input is an error; a bad signature is an INVALID verdict.
func Verify(der []byte, opts VerifyOptions) (policy.Verdict, error) {
	return policy.Verdict{}, errors.New("signer: not implemented")
}
