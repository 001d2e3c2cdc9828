package signer

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

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
	// ErrContentType: Options.ContentType is not an identifier, or is not
	// id-data on a detached signature.
	ErrContentType = errors.New("signer: bad content type")
	// ErrUnsupportedKey: a key type Sign cannot use (only RSA and ECDSA).
	ErrUnsupportedKey = errors.New("signer: unsupported key type")
)

// Options for a new signature.
type Options struct {
	// Hash is SHA-256 (default, when zero), SHA-384 or SHA-512.
	Hash crypto.Hash
	// Attached embeds the content (encapContentInfo eContent); default detached.
	Attached bool
	// SigningTime goes into the signing-time attribute; zero means now.
	SigningTime time.Time
	// UnsignedAttributes, when set, is called with the signature value
	// once it is made and returns unsigned attributes for the SignerInfo.
	// It is the place for a CAdES-T signature time-stamp: an RFC 3161
	// token over the signature value, as attribute
	// OIDSignatureTimeStampToken (ETSI EN 319 122-1 5.3).
	UnsignedAttributes func(signatureValue []byte) ([]Attribute, error)
	// ContentType is the eContentType in dotted form; empty means id-data.
	// Another type (an RFC 3161 TSTInfo, id-ct-TSTInfo) is only possible
	// attached, and makes the SignedData version 3 (RFC 5652 5.1).
	ContentType string
	// OmitCertificates leaves the certificates out of the SignedData (a
	// time-stamp token whose request did not ask for them, RFC 3161 2.4.1).
	OmitCertificates bool
	// ECDSACheck, when set, samples the verification of the key's own
	// ECDSA signatures before they are handed out (nil: every signature
	// is verified).
	ECDSACheck *Sampler
	// RSACheck, when set, samples the verification of the key's own RSA
	// signatures (nil, the default: every one is verified). That check is
	// the countermeasure against RSA-CRT fault attacks, where one faulty
	// signature gives the key away; sample it only for a token that
	// verifies its own CRT results before returning a signature (OpenSSL,
	// and so SoftHSM on it, does; so do certified HSMs). See sign.go.
	RSACheck *Sampler
}

// TimestampVerifier verifies a CAdES-T signature time-stamp token (the
// DER of an RFC 3161 TimeStampToken) over a SignerInfo's signature value.
// It returns the token's genTime and a verdict on the token; package tsa
// implements it, and signer does not import tsa, so tsa can build on signer.
type TimestampVerifier interface {
	VerifyTimestamp(token, signatureValue []byte) (genTime time.Time, v policy.Verdict, err error)
}

// TimestampVerifierWithCertificates is a TimestampVerifier that also takes
// the certificates of the signature around the token: a TSA's issuing CA
// often travels there rather than in the token (a path needs it; it is
// trusted no more than any intermediate). Verify prefers it when
// implemented.
type TimestampVerifierWithCertificates interface {
	VerifyTimestampWithCertificates(token, signatureValue []byte, certs []*x509.Certificate) (genTime time.Time, v policy.Verdict, err error)
}

// Sign makes a CMS SignedData (DER) over content with signed attributes
// content-type, message-digest, signing-time and signing-certificate-v2. The
// chain is leaf first; every certificate in it is included, in the order
// DER gives a SET OF (readers find the signer by issuer and serial number).
// key.Sign is called exactly once, with the digest of the signed attributes.
func Sign(content []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) ([]byte, error) {
	h, err := checkHash(opts.Hash)
	if err != nil {
		return nil, err
	}
	if len(content) == 0 {
		return nil, ErrEmptyContent
	}
	d := h.New()
	d.Write(content)
	return sign(signRequest{hash: h, digest: d.Sum(nil), content: content, attach: opts.Attached, key: key, chain: chain, opts: opts})
}

// SignDigest makes a detached CMS SignedData over a digest the client
// computed with opts.Hash; the content never reaches pecet. opts.Attached
// is ignored.
func SignDigest(digest []byte, key crypto.Signer, chain []*x509.Certificate, opts Options) ([]byte, error) {
	h, err := checkHash(opts.Hash)
	if err != nil {
		return nil, err
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("%w: %d bytes for %v", ErrDigestLength, len(digest), h)
	}
	return sign(signRequest{hash: h, digest: digest, key: key, chain: chain, opts: opts})
}

// VerifyOptions say what to verify against.
type VerifyOptions struct {
	// Content is the signed content; Digest (with DigestHash, zero meaning
	// SHA-256) the client's digest of it, as an alternative. A detached
	// signature needs one of them. With an attached signature either is
	// optional, and when given it must be the embedded content (Content
	// byte for byte, Digest its digest), else the verdict is INVALID with
	// CodeContentMismatch: the caller never gets VALID for content the
	// signature does not cover (docs/security.md).
	Content    []byte
	Digest     []byte
	DigestHash crypto.Hash
	// Validator judges the signer's chain; nil means no chain check (the
	// verdict is then INDETERMINATE with UNTRUSTED_ROOT).
	Validator policy.Validator
	// At overrides the time the chain is judged at; zero means the time of
	// a verified signature time-stamp (TimestampVerifier), else now, never
	// the signing-time attribute the signer only claims.
	At time.Time
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Policy carries the chain validation inputs that the signature does
	// not: policy name, extra anchors and CRLs, revocation mode, context.
	// Leaf, Intermediates, Purpose and At are filled in by Verify.
	Policy policy.Request
	// Limits bound the parsing; zero fields take DefaultLimits.
	Limits Limits
	// Purpose the signer's certificate is judged for; empty means
	// policy.PurposeSigning (package tsa asks for PurposeTimestamping).
	Purpose policy.Purpose
	// ExtraCertificates are known out of band: they are searched for the
	// signer's certificate and offered as intermediates, as the message's
	// own certificates are (a time-stamp token may come without any).
	ExtraCertificates []*x509.Certificate
	// TimestampVerifier, when set, verifies each signature-time-stamp
	// unsigned attribute (CAdES-T). A valid one sets the verdict's
	// TimestampTime, and the chain is then judged at that time (unless At
	// is set); an invalid one lowers the verdict with its reasons. Without
	// it such attributes are ignored.
	TimestampVerifier TimestampVerifier
}

// Verify parses a CMS SignedData and returns a verdict: digest, signature
// and (through the Validator) the signer's chain. Only a malformed or
// over-limit input is an error; a bad signature is an INVALID verdict.
//
// A detached signature without Content or Digest is ErrContentMissing.
// With several SignerInfos all must verify: the verdict is the worst of
// theirs, with the first signer's subject, signing time and chain.
func Verify(der []byte, opts VerifyOptions) (policy.Verdict, error) {
	r, err := verify(der, opts)
	return r.Verdict, err
}

// ContentSource says where the content a verdict is about came from.
type ContentSource string

// Content sources.
const (
	// ContentEmbedded: the eContent of an attached signature.
	ContentEmbedded ContentSource = "EMBEDDED"
	// ContentGiven: content the caller supplied (VerifyOptions.Content).
	ContentGiven ContentSource = "GIVEN_CONTENT"
	// DigestGiven: a digest the caller supplied (VerifyOptions.Digest).
	DigestGiven ContentSource = "GIVEN_DIGEST"
)

// VerifiedContent says which content a verdict is about.
type VerifiedContent struct {
	// Source is where the content the signature was verified over came
	// from.
	Source ContentSource
	// Compared is, for an attached signature, what the caller supplied and
	// had compared with the embedded content (ContentGiven or DigestGiven;
	// empty when nothing was supplied). A difference makes the verdict
	// INVALID with CodeContentMismatch.
	Compared ContentSource
	// Embedded is the content of an attached signature (it shares memory
	// with the input); nil for a detached one.
	Embedded []byte
	// Digest is the digest of the verified content with Hash: the first
	// signer's digest algorithm, or the caller's for DigestGiven.
	Digest []byte
	Hash   crypto.Hash
}

// Report is a verdict together with the content it is about.
type Report struct {
	Verdict policy.Verdict
	Content VerifiedContent
}

// VerifyReport is Verify that also says which content was verified and,
// for an attached signature, returns it.
func VerifyReport(der []byte, opts VerifyOptions) (Report, error) {
	return verify(der, opts)
}
