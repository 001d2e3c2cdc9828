package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// signRequest is what Sign and SignDigest have in common once the content
// is reduced to its digest.
type signRequest struct {
	hash    crypto.Hash
	digest  []byte // of the content, for the message-digest attribute
	content []byte // embedded when attached
	attach  bool
	key     crypto.Signer
	chain   []*x509.Certificate
	opts    Options
}

// checkHash resolves the hash of new signatures. Only SHA-2 of 256 bits or
// more is offered: SHA-1 and MD5 are broken for signatures, and SHA-224 is
// not in the ETSI TS 119 312 list for new signatures.
func checkHash(h crypto.Hash) (crypto.Hash, error) {
	switch h {
	case 0:
		return crypto.SHA256, nil
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		return h, nil
	}
	return 0, fmt.Errorf("%w: %v", ErrUnsupportedHash, h)
}

// checkKey checks that the chain's leaf certifies key and says which
// signature algorithm the key makes.
func checkKey(key crypto.Signer, chain []*x509.Certificate, h crypto.Hash) (oidName, []byte, error) {
	if len(chain) == 0 || chain[0] == nil {
		return "", nil, ErrNoCertificate
	}
	for i, c := range chain {
		if c == nil {
			return "", nil, fmt.Errorf("%w: chain[%d] is nil", ErrNoCertificate, i)
		}
	}
	if key == nil {
		return "", nil, fmt.Errorf("%w: no key", ErrKeyMismatch)
	}
	// Every public key type in the standard library has Equal; an HSM
	// signer returns one of those from Public.
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return "", nil, ErrKeyMismatch
	}
	switch chain[0].PublicKey.(type) {
	case *rsa.PublicKey:
		// rsaEncryption rather than sha256WithRSAEncryption: it is what
		// OpenSSL writes and what every CMS reader accepts (RFC 3370 3.2).
		return oidRSAEncryption, derNull(), nil
	case *ecdsa.PublicKey:
		return ecdsaSignatureOID(h), nil, nil
	}
	return "", nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, chain[0].PublicKey)
}

func sign(r signRequest) ([]byte, error) {
	sigAlg, sigParams, err := checkKey(r.key, r.chain, r.hash)
	if err != nil {
		return nil, err
	}
	leaf := r.chain[0]
	at := r.opts.SigningTime
	if at.IsZero() {
		at = time.Now()
	}

	contentType := oidData
	if r.opts.ContentType != "" {
		contentType = oidName(r.opts.ContentType)
		if !validOID(r.opts.ContentType) {
			return nil, fmt.Errorf("%w: %q is not a dotted object identifier", ErrContentType, r.opts.ContentType)
		}
		if contentType != oidData && !r.attach {
			return nil, fmt.Errorf("%w: %s must be attached", ErrContentType, r.opts.ContentType)
		}
	}
	// RFC 5652 5.1: version 3 when the content is not id-data.
	version := int64(1)
	if contentType != oidData {
		version = 3
	}

	parts, err := partsOf(r.hash, leaf)
	if err != nil {
		return nil, fmt.Errorf("signer: encoding the certificate's parts: %w", err)
	}
	attrs, err := signedAttributes(r.digest, at, parts, contentType)
	if err != nil {
		return nil, err
	}
	// RFC 5652 5.4: the signature is over the DER of the attributes as a
	// SET OF, the [0] IMPLICIT they travel under replaced.
	toSign := cryptobyte.NewBuilder(nil)
	toSign.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(attrs) })
	signedAttrsDER, err := toSign.Bytes()
	if err != nil {
		return nil, fmt.Errorf("signer: encoding signed attributes: %w", err)
	}
	h := r.hash.New()
	h.Write(signedAttrsDER)
	attrsDigest := h.Sum(nil)

	sig, err := r.key.Sign(rand.Reader, attrsDigest, r.hash)
	if err != nil {
		return nil, fmt.Errorf("signer: signing: %w", err)
	}
	// A faulty token (or an RSA-CRT fault) returns a wrong signature; one
	// public-key operation here is cheap next to handing it out on a real
	// HSM. One faulty RSA-CRT signature gives away the key (Boneh–DeMillo–
	// Lipton: a signature right modulo p and wrong modulo q factors n), so
	// by default every RSA signature is verified. The check is ≈50–70 µs
	// of pecet's CPU (Go builds the modulus for every verification), which
	// matters only where the token is software on the same cores: SoftHSM
	// signs on OpenSSL, whose RSA private operation verifies its own CRT
	// result (s^e mod n against the input, recomputing without CRT on a
	// mismatch), so a faulty CRT half never leaves the token; a fault after
	// that check changes the whole signature and reveals nothing. For such
	// tokens, and HSMs that document the same, the caller may sample the
	// check (Options.RSACheck), which still catches a token or key that
	// keeps signing wrong. An ECDSA verification costs more than the
	// token's signature (≈150 µs of CPU), and a single faulty ECDSA
	// signature does not reveal the key, so a caller may sample it too.
	check := r.opts.RSACheck
	if _, isEC := leaf.PublicKey.(*ecdsa.PublicKey); isEC {
		check = r.opts.ECDSACheck
	}
	if check.take() {
		if err := CheckOwnSignature(leaf.PublicKey, r.hash, attrsDigest, sig); err != nil {
			return nil, err
		}
	}

	var unsigned []byte
	if r.opts.UnsignedAttributes != nil {
		list, err := r.opts.UnsignedAttributes(sig)
		if err != nil {
			return nil, fmt.Errorf("signer: unsigned attributes: %w", err)
		}
		enc := make([][]byte, 0, len(list))
		for _, a := range list {
			e, err := encodeAttribute(a)
			if err != nil {
				return nil, fmt.Errorf("signer: unsigned attributes: %w", err)
			}
			enc = append(enc, e)
		}
		unsigned = setOf(enc)
	}

	digestAlg, _ := digestOID(r.hash)
	certs := make([][]byte, len(r.chain))
	for i, c := range r.chain {
		certs[i] = c.Raw
	}

	b := cryptobyte.NewBuilder(make([]byte, 0, len(r.content)+len(signedAttrsDER)+len(sig)+len(unsigned)+totalLen(certs)+256))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		addOID(b, oidSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(version)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					addAlgorithm(b, digestAlg, nil)
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncapsulatedContentInfo
					addOID(b, contentType)
					if r.attach {
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(r.content)
						})
					}
				})
				// DER orders a SET OF, so the certificates are sorted rather
				// than leaf first; readers find the signer by its identifier.
				if !r.opts.OmitCertificates {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddBytes(setOf(certs))
					})
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddBytes(parts.issuerSerial) // IssuerAndSerialNumber
						addAlgorithm(b, digestAlg, nil)
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddBytes(attrs)
						})
						addAlgorithm(b, sigAlg, sigParams)
						b.AddASN1OctetString(sig)
						if unsigned != nil {
							b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddBytes(unsigned)
							})
						}
					})
				})
			})
		})
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("signer: encoding SignedData: %w", err)
	}
	return out, nil
}

// signedAttributes returns the contents of the signed attributes SET OF,
// sorted: content-type, message-digest, signing-time and
// signing-certificate-v2 (the CAdES baseline B set, ETSI EN 319 122-1 5.2).
func signedAttributes(digest []byte, at time.Time, parts *leafParts, contentType oidName) ([]byte, error) {
	values := []struct {
		o   oidName
		add func(*cryptobyte.Builder)
	}{
		{oidAttrContentType, func(b *cryptobyte.Builder) { addOID(b, contentType) }},
		{oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) }},
		{oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, at) }},
	}
	enc := make([][]byte, 0, len(values)+1)
	for _, v := range values {
		b := cryptobyte.NewBuilder(make([]byte, 0, 32+len(digest)))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addOID(b, v.o)
			b.AddASN1(cbasn1.SET, v.add)
		})
		e, err := b.Bytes()
		if err != nil {
			return nil, fmt.Errorf("signer: encoding attribute %s: %w", v.o, err)
		}
		enc = append(enc, e)
	}
	// signing-certificate-v2 depends only on the certificate and the hash:
	// encoded once per key version (partsOf).
	enc = append(enc, parts.essAttr)
	return setOf(enc), nil
}

// Sampler picks one in Every calls (the first call included). It is safe
// for concurrent use; one Sampler is shared by the callers it samples.
type Sampler struct {
	Every uint64
	n     atomic.Uint64
}

// take reports whether this call is sampled; a nil Sampler or an Every
// below 2 samples every call.
func (s *Sampler) take() bool {
	if s == nil || s.Every < 2 {
		return true
	}
	return (s.n.Add(1)-1)%s.Every == 0
}

// errOwnSignature: a signature the token just made does not verify with
// the key's certificate. Unexported on purpose: nothing can be done about
// it by the caller, so it stays Internal (the server log has it).
var errOwnSignature = errors.New("signer: the key's signature does not verify with its certificate")

// CheckOwnSignature verifies a signature just made over digest (PKCS #1
// v1.5 for RSA, ASN.1 for ECDSA) with the certificate's key pub: one that
// does not verify never leaves (the RSA-CRT fault countermeasure of
// Options.RSACheck; the server applies it to every raw batch signature).
func CheckOwnSignature(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) error {
	ok := false
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		ok = verifyOwnPKCS1v15(pub, h, digest, sig) // rsacheck.go: exact, without rebuilding the modulus
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest, sig)
	}
	if !ok {
		return errOwnSignature
	}
	return nil
}

func totalLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}
