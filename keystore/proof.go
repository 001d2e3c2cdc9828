package keystore

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ProofSigner returns a crypto.Signer for one version (not 0: a version must
// be named) in any state that still has its private key: PENDING_CERTIFICATE,
// ENABLED or DISABLED. It exists for proof of possession, i.e. signing a
// PKCS#10 certification request, which a version needs before it can be
// enabled; Sign and Timestamp must use Signer, which insists on ENABLED.
//
// A DECRYPT key has CKA_SIGN false, yet a CA wants its CSR signed by it too.
// For those the signature is made with the raw RSA private-key operation
// (CKM_RSA_X_509) over an EMSA-PKCS1-v1_5 block built here: only PKCS#1
// v1.5 with SHA-256/384/512 is offered, so the decrypt key never signs
// anything but a properly encoded digest.
func (s *Store) ProofSigner(ctx context.Context, alias string, version int) (crypto.Signer, error) {
	if version < 1 {
		return nil, fmt.Errorf("%w: %q version %d", ErrVersionNotFound, alias, version)
	}
	e, err := s.reload(ctx, alias)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(e.key.Versions, func(v Version) bool { return v.Version == version })
	if i < 0 {
		return nil, fmt.Errorf("%w: %q version %d", ErrVersionNotFound, alias, version)
	}
	v := e.key.Versions[i]
	h, ok := e.priv[version]
	if v.State == StateDestroyed || !ok || v.Public == nil {
		return nil, fmt.Errorf("%w: %q version %d is %s", ErrInvalidState, alias, version, v.State)
	}
	if v.Problem == problemPublicKey {
		// The public key a CSR would carry is not the private key's.
		return nil, fmt.Errorf("%w: %q version %d: %s", ErrVersionRefused, alias, version, v.Problem)
	}
	if v.Purpose != PurposeDecrypt {
		return &KeySigner{v: v, s: s, h: h, ctx: ctx}, nil
	}
	return &rawRSASigner{d: &KeyDecrypter{v: v, s: s, h: h, ctx: ctx}}, nil
}

// rawRSASigner signs PKCS#1 v1.5 with a decrypt-only RSA key (see
// ProofSigner).
type rawRSASigner struct{ d *KeyDecrypter }

func (r *rawRSASigner) Public() crypto.PublicKey { return r.d.v.Public }

func (r *rawRSASigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	pub, ok := r.d.v.Public.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: not an RSA key", ErrUnsupportedAlgorithm)
	}
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return nil, fmt.Errorf("%w: PSS with a decrypt key", ErrUnsupportedAlgorithm)
	}
	h := opts.HashFunc()
	hi, ok := hashes[h]
	if !ok || (h != crypto.SHA256 && h != crypto.SHA384 && h != crypto.SHA512) || len(digest) != h.Size() {
		return nil, fmt.Errorf("%w: proof signature with hash %v", ErrUnsupportedAlgorithm, h)
	}
	// EMSA-PKCS1-v1_5 (RFC 8017 §9.2): 00 01 FF..FF 00 DigestInfo.
	k := pub.Size()
	t := append(slices.Clone(hi.prefix), digest...)
	if k < len(t)+11 {
		return nil, errors.New("keystore: RSA modulus too small for the digest")
	}
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(t):], t)
	sig, err := r.d.DecryptRaw(r.d.ctx, em)
	if err != nil {
		return nil, err
	}
	// Check before handing it out: a token that mangled the operation must
	// not produce a CSR the CA rejects for reasons nobody can see.
	if err := rsa.VerifyPKCS1v15(pub, h, digest, sig); err != nil {
		return nil, fmt.Errorf("keystore: raw RSA proof signature does not verify: %w", err)
	}
	return sig, nil
}

// ErrCertificateUsage: the certificate's key usage or extended key usage
// does not fit the key's purpose.
var ErrCertificateUsage = errors.New("keystore: certificate key usage does not fit the key's purpose")

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

// CheckCertificateUsage says whether a leaf certificate's key usage and
// extended key usage fit a purpose (RFC 5280 §4.2.1.3 and §4.2.1.12):
//
//	SIGN       keyUsage digitalSignature or nonRepudiation
//	DECRYPT    keyUsage keyEncipherment (RSA key transport, RFC 5652 §6.2.1)
//	TIMESTAMP  exactly one EKU, id-kp-timeStamping, marked critical (RFC 3161 §2.3)
//	AUDIT      keyUsage digitalSignature (audit checkpoints)
//
// ImportCertificate does not call it (library callers and tests certify
// keys as they like); the KeyService does before every import.
func CheckCertificateUsage(p Purpose, c *x509.Certificate) error {
	if c == nil {
		return fmt.Errorf("%w: no certificate", ErrCertificateUsage)
	}
	switch p {
	case PurposeSign:
		if c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
			return fmt.Errorf("%w: a SIGN key needs keyUsage digitalSignature or nonRepudiation", ErrCertificateUsage)
		}
	case PurposeAudit:
		if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return fmt.Errorf("%w: an AUDIT key needs keyUsage digitalSignature", ErrCertificateUsage)
		}
	case PurposeDecrypt:
		if c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			return fmt.Errorf("%w: a DECRYPT key needs keyUsage keyEncipherment", ErrCertificateUsage)
		}
	case PurposeTimestamp:
		critical := false
		for _, ext := range c.Extensions {
			if ext.Id.Equal(oidExtKeyUsage) {
				critical = ext.Critical
			}
		}
		if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping || len(c.UnknownExtKeyUsage) != 0 || !critical {
			return fmt.Errorf("%w: a TIMESTAMP key needs exactly one extended key usage, timeStamping, marked critical", ErrCertificateUsage)
		}
	default:
		return fmt.Errorf("%w: %q", ErrInvalidPurpose, p)
	}
	return nil
}
