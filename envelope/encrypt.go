package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // RSA-OAEP with SHA-1, for HSMs that decrypt no other OAEP (docs/hsm.md)
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Options for Encrypt. The zero value writes AES-256-GCM in
// AuthEnvelopedData (RFC 5083) with RSA-OAEP-SHA256: authenticated content,
// so a tampered message fails instead of decrypting to garbage. Give
// AES256CBC for receivers that read only EnvelopedData. EncryptWriter's
// zero value is AES-256-CBC: GCM is not streamed (ErrStreamGCM).
type Options struct {
	// Cipher is the content cipher (default AES256GCM for Encrypt,
	// AES256CBC for EncryptWriter). GCM ciphers are written as
	// AuthEnvelopedData (RFC 5083), CBC as EnvelopedData.
	Cipher Cipher
	// KeyTransport is the RSA key transport (default RSAOAEP, SHA-256).
	KeyTransport KeyTransport
	// AllowLegacy skips the recipient certificate checks (key usage, RSA
	// key size, validity period), for tests against legacy receivers. RSA
	// keys below 1024 bits are refused even then.
	AllowLegacy bool
	// Now is the time certificates are checked at (default time.Now).
	Now time.Time
	// Limits bound the body (MaxBody) and the recipients (MaxRecipients).
	Limits Limits
	// Rand is the source of content keys and IVs (default crypto/rand).
	Rand io.Reader
}

// CheckRecipient says whether Encrypt would accept cert at now: an RSA key
// of at least 2048 bits, a key usage extension that allows
// keyEncipherment (a certificate without the extension is unrestricted, RFC
// 5280 4.2.1.3), and a validity period that includes now.
func CheckRecipient(cert *x509.Certificate, now time.Time) error {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: %s has a %T key", ErrUnsupportedKey, subject(cert), cert.PublicKey)
	}
	if pub.N.BitLen() < 2048 {
		return fmt.Errorf("%w: %s has RSA-%d", ErrWeakKey, subject(cert), pub.N.BitLen())
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return fmt.Errorf("%w: %s", ErrKeyUsage, subject(cert))
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: %s is valid from %s to %s", ErrExpired, subject(cert),
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

func subject(c *x509.Certificate) string {
	s := c.Subject.String()
	if len(s) > 96 {
		s = s[:96] + "…"
	}
	return "certificate " + s
}

// Encrypt encrypts data to each recipient certificate and returns a CMS
// ContentInfo (DER): EnvelopedData for CBC, AuthEnvelopedData for GCM.
// Each recipient gets a KeyTransRecipientInfo naming its certificate by
// issuer and serial number. The content key is erased before returning.
func Encrypt(data []byte, recipients []*x509.Certificate, opts Options) ([]byte, error) {
	lim := opts.Limits.WithDefaults()
	c, kt, err := algorithms(opts, AES256GCM)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, ErrEmptyContent
	}
	if len(data) > lim.MaxBody {
		return nil, tooLargef("body of %d bytes exceeds the limit of %d", len(data), lim.MaxBody)
	}
	sl, err := seal(c, kt, recipients, opts)
	if err != nil {
		return nil, err
	}
	defer clear(sl.cek)
	cek, ris, rnd := sl.cek, sl.ris, sl.rnd

	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	var iv, ct, tag []byte
	if c.gcm() {
		iv = make([]byte, 12)
		if _, err := io.ReadFull(rnd, iv); err != nil {
			return nil, fmt.Errorf("envelope: random nonce: %w", err)
		}
		g, err := cipher.NewGCM(block) // 12-byte nonce, 16-byte tag
		if err != nil {
			return nil, err
		}
		sealed := g.Seal(nil, iv, data, nil)
		ct, tag = sealed[:len(data)], sealed[len(data):]
	} else {
		iv = make([]byte, aes.BlockSize)
		if _, err := io.ReadFull(rnd, iv); err != nil {
			return nil, fmt.Errorf("envelope: random IV: %w", err)
		}
		pad := aes.BlockSize - len(data)%aes.BlockSize
		ct = make([]byte, len(data)+pad)
		copy(ct, data)
		for i := len(data); i < len(ct); i++ {
			ct[i] = byte(pad)
		}
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	}

	return marshalMessage(c, ris, iv, ct, tag)
}

// algorithms resolves the cipher and key transport of opts (defaults:
// defCipher, RSA-OAEP-SHA256) and refuses what is not written.
func algorithms(opts Options, defCipher Cipher) (Cipher, KeyTransport, error) {
	c := opts.Cipher
	if c == "" {
		c = defCipher
	}
	if c != AES256CBC && c != AES128CBC && c != AES256GCM && c != AES128GCM {
		return "", "", fmt.Errorf("%w: cipher %q", ErrUnsupported, short(string(c)))
	}
	kt := opts.KeyTransport
	if kt == "" {
		kt = RSAOAEP
	}
	if kt != RSAOAEP && kt != RSAOAEPSHA1 && kt != RSAPKCS1 {
		return "", "", fmt.Errorf("%w: key transport %q", ErrUnsupported, short(string(kt)))
	}
	return c, kt, nil
}

// sealed is a fresh content key (the caller clears it) and its encoded
// RecipientInfos.
type sealed struct {
	cek []byte
	ris [][]byte
	rnd io.Reader
}

// seal checks the recipients, draws a content key for c and encrypts it
// to each recipient with kt: the part of Encrypt that the streaming
// EncryptWriter shares.
func seal(c Cipher, kt KeyTransport, recipients []*x509.Certificate, opts Options) (sealed, error) {
	lim := opts.Limits.WithDefaults()
	if len(recipients) == 0 {
		return sealed{}, ErrNoRecipients
	}
	if len(recipients) > lim.MaxRecipients {
		return sealed{}, tooLargef("%d recipients exceed the limit of %d", len(recipients), lim.MaxRecipients)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	for i, cert := range recipients {
		if cert == nil {
			return sealed{}, fmt.Errorf("%w: recipient %d is nil", ErrNoRecipients, i)
		}
		if opts.AllowLegacy {
			pub, ok := cert.PublicKey.(*rsa.PublicKey)
			if !ok {
				return sealed{}, fmt.Errorf("%w: %s has a %T key", ErrUnsupportedKey, subject(cert), cert.PublicKey)
			}
			if pub.N.BitLen() < 1024 {
				return sealed{}, fmt.Errorf("%w: %s has RSA-%d", ErrWeakKey, subject(cert), pub.N.BitLen())
			}
			continue
		}
		if err := CheckRecipient(cert, now); err != nil {
			return sealed{}, fmt.Errorf("recipient %d: %w", i, err)
		}
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	cek := make([]byte, c.keyLen())
	if _, err := io.ReadFull(rnd, cek); err != nil {
		return sealed{}, fmt.Errorf("envelope: random content key: %w", err)
	}
	ris := make([][]byte, 0, len(recipients))
	for i, cert := range recipients {
		ri, err := keyTransRecipientInfo(cert, cek, kt, rnd)
		if err != nil {
			clear(cek)
			return sealed{}, fmt.Errorf("recipient %d: %w", i, err)
		}
		ris = append(ris, ri)
	}
	return sealed{cek: cek, ris: ris, rnd: rnd}, nil
}

// marshalMessage writes the ContentInfo around encrypted content and
// encoded RecipientInfos.
func marshalMessage(c Cipher, ris [][]byte, iv, ct, tag []byte) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, len(ct)+len(ris)*600+128))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if c.gcm() {
			b.AddASN1ObjectIdentifier(oidAuthEnvelopedData())
		} else {
			b.AddASN1ObjectIdentifier(oidEnvelopedData())
		}
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				// Version 0: no originatorInfo, every RecipientInfo is a
				// version 0 ktri, no unprotected attributes (RFC 5652 6.1;
				// RFC 5083 2.1 fixes 0).
				b.AddASN1Int64(0)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, ri := range sortedSet(ris) {
						b.AddBytes(ri)
					}
				})
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidData())
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(cipherOID(c))
						if c.gcm() {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1OctetString(iv)
								b.AddASN1Int64(int64(len(tag)))
							})
						} else {
							b.AddASN1OctetString(iv)
						}
					})
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ct) })
				})
				if c.gcm() {
					b.AddASN1OctetString(tag)
				}
			})
		})
	})
	return b.Bytes()
}

// keyTransRecipientInfo encrypts cek to cert (RFC 5652 6.2.1, version 0,
// issuerAndSerialNumber).
func keyTransRecipientInfo(cert *x509.Certificate, cek []byte, kt KeyTransport, rnd io.Reader) ([]byte, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, cert.PublicKey)
	}
	var ek []byte
	var err error
	switch kt {
	case RSAOAEP:
		ek, err = rsa.EncryptOAEP(sha256.New(), rnd, pub, cek, nil)
	case RSAOAEPSHA1:
		ek, err = rsa.EncryptOAEP(sha1.New(), rnd, pub, cek, nil) //nolint:gosec // OAEP-SHA1 only when asked for (docs/hsm.md)
	case RSAPKCS1:
		ek, err = rsa.EncryptPKCS1v15(rnd, pub, cek) //nolint:staticcheck // RSAPKCS1 is for legacy receivers only, when asked for (KeyTransport)
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: RSA encryption: %w", err)
	}
	return marshalKTRI(cert, ek, kt)
}

// marshalKTRI writes a version 0 KeyTransRecipientInfo.
func marshalKTRI(cert *x509.Certificate, ek []byte, kt KeyTransport) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(cert.RawIssuer)
			b.AddASN1BigInt(cert.SerialNumber)
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			switch kt {
			case RSAPKCS1:
				b.AddASN1ObjectIdentifier(oidRSAEncryption())
				b.AddASN1NULL()
			case RSAOAEPSHA1:
				// All defaults: SHA-1, MGF1-SHA-1, empty label (RFC 4055 4.1).
				b.AddASN1ObjectIdentifier(oidRSAESOAEP())
				b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
			case RSAOAEP:
				b.AddASN1ObjectIdentifier(oidRSAESOAEP())
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidSHA256())
						})
					})
					b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1ObjectIdentifier(oidMGF1())
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(oidSHA256())
							})
						})
					})
				})
			}
		})
		b.AddASN1OctetString(ek)
	})
	return b.Bytes()
}

// sortedSet orders DER elements as a DER SET OF requires (X.690 11.6).
func sortedSet(elems [][]byte) [][]byte {
	out := append([][]byte(nil), elems...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && lessDER(out[j], out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func lessDER(a, b []byte) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}
