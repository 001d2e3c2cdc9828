package envelope

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors (errors.Is); the server maps them to gRPC codes.
var (
	// ErrDecrypt is the one error for every failure to recover the content
	// of a message addressed to a key we hold: bad RSA padding, a content key
	// of the wrong length, corrupted ciphertext, bad CBC padding, a GCM tag
	// that does not verify. It never says which, so that decryption is not
	// an oracle (RFC 3218).
	ErrDecrypt = errors.New("envelope: decryption failed")
	// ErrMalformed: not a well-formed CMS EnvelopedData or AuthEnvelopedData.
	ErrMalformed = errors.New("envelope: malformed CMS EnvelopedData")
	// ErrTooLarge: input exceeds a bound (bytes, depth, recipients, body size).
	ErrTooLarge = errors.New("envelope: input exceeds limits")
	// ErrUnsupported: a content cipher or key transport this package does not
	// offer (for encryption) or know (in a message).
	ErrUnsupported = errors.New("envelope: unsupported algorithm")
	// ErrNoRecipient: no RecipientInfo of the message names a key the
	// caller may use. Which certificates a message is for is public, so
	// saying so is no oracle.
	ErrNoRecipient = errors.New("envelope: no recipient of the message matches an available key")
	// ErrNoRecipients: Encrypt without a recipient.
	ErrNoRecipients = errors.New("envelope: at least one recipient certificate is required")
	// ErrEmptyContent: nothing to encrypt.
	ErrEmptyContent = errors.New("envelope: empty content")
	// ErrKeyUsage: the recipient certificate's key usage excludes key
	// encipherment.
	ErrKeyUsage = errors.New("envelope: recipient certificate does not allow key encipherment")
	// ErrWeakKey: the recipient's RSA key is shorter than 2048 bits.
	ErrWeakKey = errors.New("envelope: recipient RSA key is shorter than 2048 bits")
	// ErrExpired: the recipient certificate is not valid now (expired or
	// not yet valid).
	ErrExpired = errors.New("envelope: recipient certificate is expired or not yet valid")
	// ErrUnsupportedKey: the recipient's key is not RSA (pecet does RSA key
	// transport only).
	ErrUnsupportedKey = errors.New("envelope: recipient key is not RSA")
)

// Cipher is a content-encryption algorithm.
type Cipher string

// Ciphers. CBC is written as EnvelopedData (RFC 5652, RFC 3565), GCM as
// AuthEnvelopedData (RFC 5083, RFC 5084).
const (
	AES256CBC Cipher = "aes256-cbc"
	AES128CBC Cipher = "aes128-cbc"
	AES256GCM Cipher = "aes256-gcm"
	AES128GCM Cipher = "aes128-gcm"
	// AES192CBC and AES192GCM are read, never written.
	AES192CBC Cipher = "aes192-cbc"
	AES192GCM Cipher = "aes192-gcm"
)

// KeyTransport is how the content key is encrypted to an RSA recipient.
type KeyTransport string

// Key transports.
const (
	// RSAOAEP is RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017,
	// RFC 4055, RFC 3560), the default.
	RSAOAEP KeyTransport = "rsa-oaep"
	// RSAOAEPSHA1 is RSAES-OAEP with SHA-1 and MGF1-SHA-1 (the RFC 3560
	// defaults).
	RSAOAEPSHA1 KeyTransport = "rsa-oaep-sha1"
	// RSAPKCS1 is RSAES-PKCS1-v1_5, for legacy receivers only: its padding
	// is malleable and is why decryption here uses implicit rejection.
	RSAPKCS1 KeyTransport = "rsa-pkcs1"
)

// ParseCipher accepts the names above, case-insensitively and with or
// without dashes ("AES-256-GCM").
func ParseCipher(s string) (Cipher, error) {
	n := strings.ToLower(strings.ReplaceAll(s, "-", ""))
	for _, c := range []Cipher{AES256CBC, AES128CBC, AES256GCM, AES128GCM} {
		if n == strings.ReplaceAll(string(c), "-", "") {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w: cipher %q (use aes256-cbc, aes128-cbc, aes256-gcm or aes128-gcm)", ErrUnsupported, short(s))
}

// ParseKeyTransport accepts rsa-oaep, rsa-oaep-sha256 (the same),
// rsa-oaep-sha1 and rsa-pkcs1.
func ParseKeyTransport(s string) (KeyTransport, error) {
	switch strings.ToLower(s) {
	case "rsa-oaep", "rsa-oaep-sha256":
		return RSAOAEP, nil
	case "rsa-oaep-sha1":
		return RSAOAEPSHA1, nil
	case "rsa-pkcs1", "rsa-pkcs1-v1_5", "rsa-pkcs1v15":
		return RSAPKCS1, nil
	}
	return "", fmt.Errorf("%w: key transport %q (use rsa-oaep, rsa-oaep-sha1 or rsa-pkcs1)", ErrUnsupported, short(s))
}

func (c Cipher) keyLen() int {
	switch c {
	case AES128CBC, AES128GCM:
		return 16
	case AES192CBC, AES192GCM:
		return 24
	case AES256CBC, AES256GCM:
		return 32
	}
	return 0
}

func (c Cipher) gcm() bool { return c == AES128GCM || c == AES192GCM || c == AES256GCM }

// Limits bound what Parse and Decrypt accept and what Encrypt writes. A
// zero field takes its default.
type Limits struct {
	// MaxBytes bounds a CMS message read (default 32 MiB: a 20 MiB body
	// plus recipients, with room for BER chunking).
	MaxBytes int
	// MaxBody bounds the content Encrypt takes (default 20 MiB, the current
	// ISDS limit).
	MaxBody int
	// MaxDepth bounds ASN.1 nesting (default 32).
	MaxDepth int
	// MaxRecipients bounds the RecipientInfos written or read (default 16).
	MaxRecipients int
	// MaxAttributes bounds authenticated and unprotected attributes (default 64).
	MaxAttributes int
	// MaxStream bounds the content an EncryptWriter takes and the bytes a
	// DecryptReader reads (default 1 GiB). MaxBytes and MaxBody are the
	// unary bounds and do not apply to streams.
	MaxStream int64
	// MaxHeader bounds the bytes a DecryptReader reads up front before the
	// content (RecipientInfos, originatorInfo) and after it (attributes)
	// (default 256 KiB: 16 recipients take about 10 KiB).
	MaxHeader int
	// MaxSegments bounds the encryptedContent segments a DecryptReader
	// reads (default 1<<22: 1 GiB in 256-byte segments).
	MaxSegments int
}

// DefaultLimits returns the limits used when a field is zero.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 32 << 20, MaxBody: 20 << 20, MaxDepth: 32, MaxRecipients: 16, MaxAttributes: 64,
		MaxStream: 1 << 30, MaxHeader: 256 << 10, MaxSegments: 1 << 22}
}

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	pick := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	streamMax := l.MaxStream
	if streamMax <= 0 {
		streamMax = d.MaxStream
	}
	return Limits{
		MaxBytes:      pick(l.MaxBytes, d.MaxBytes),
		MaxBody:       pick(l.MaxBody, d.MaxBody),
		MaxDepth:      pick(l.MaxDepth, d.MaxDepth),
		MaxRecipients: pick(l.MaxRecipients, d.MaxRecipients),
		MaxAttributes: pick(l.MaxAttributes, d.MaxAttributes),
		MaxStream:     streamMax,
		MaxHeader:     pick(l.MaxHeader, d.MaxHeader),
		MaxSegments:   pick(l.MaxSegments, d.MaxSegments),
	}
}

// short cuts a caller-supplied string for an error message.
func short(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

func malformedf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

func tooLargef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, a...))
}
