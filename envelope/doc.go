// Package envelope encrypts data to X.509 certificates and decrypts it with
// keys that stay in an HSM: CMS EnvelopedData (RFC 5652 section 6) with
// AES-CBC (RFC 3565), and AuthEnvelopedData (RFC 5083) with AES-GCM
// (RFC 5084), the content key carried to each recipient by RSA key transport:
// RSAES-OAEP (RFC 8017 7.1, RFC 3560, RFC 4055 parameters) with SHA-256
// (the default) or SHA-1, or RSAES-PKCS1-v1_5 (RFC 8017 7.2) for legacy
// receivers.
//
// Encrypt takes certificates and refuses, unless Options.AllowLegacy, a
// recipient whose key usage excludes keyEncipherment, an RSA key under 2048
// bits, a certificate outside its validity period, or a key that is not
// RSA. The number of recipients and the body size are bounded (Limits;
// default 16 and 20 MiB, the ISDS limit).
//
// Decrypt takes a Finder that maps a RecipientInfo's identifier (issuer and
// serial number, or subject key identifier) to a Key: anything with
// Public and DecryptRaw, the raw RSA private-key operation. In pecet that is
// keystore.KeyDecrypter, whose DecryptRaw runs CKM_RSA_X_509 on the token;
// this package never sees PKCS#11, and the private key never leaves the
// token.
//
// # Decryption is not an oracle
//
// Every failure to recover the content of a message addressed to a key we
// hold is ErrDecrypt, with nothing added: bad RSA padding, a content key of
// the wrong length, corrupted ciphertext, bad CBC padding, a GCM tag that
// fails. The RSA padding is removed here, in constant time (crypto/subtle,
// no branch or index on secret bytes): PKCS#1 v1.5 always, OAEP by default
// where the token cannot. When the padding or the key length is wrong, the
// content is decrypted with a synthetic key of the expected length instead
// (RFC 3218 2.3.2, implicit rejection), so the failure surfaces only as the
// content decryption failing, exactly as it does for a wrong key. The
// synthetic key is HMAC-SHA-256 of the encrypted key under a secret bound to
// the private key and made on the token (rejection.go), never fresh
// randomness: one message is rejected the same way every time it is sent,
// so repeating it reveals nothing. The token's
// CKM_RSA_PKCS is never used to decrypt: it reports bad padding as an error,
// which is Bleichenbacher's oracle. What stays observable is public: whether
// a RecipientInfo names one of our certificates (ErrNoRecipient), whether
// the encrypted key has the modulus length, and the message structure
// (ErrMalformed).
//
// AES-CBC content (EnvelopedData) is unauthenticated, so a receiver that
// returns garbage plaintext for a tampered ciphertext where it would fail
// on a bad CBC padding still leaks something; that is inherent to
// EnvelopedData. Encrypt therefore writes AES-256-GCM (AuthEnvelopedData)
// unless told otherwise; CBC stays for receivers that need it and for
// streams. Always verify the signature of what was decrypted (as the
// e-podání gateway does).
//
// # RSA-OAEP on tokens that lack it (DecryptOptions.OAEP)
//
// SoftHSM 2.6, as Debian ships it, implements CKM_RSA_PKCS_OAEP with SHA-1
// only and fails SHA-256 parameters with CKR_ARGUMENTS_BAD; hardware HSMs
// do both. Decrypt therefore asks the key (OAEPKey.SupportsOAEP, which
// keystore learns once per token by a trial decryption) and, by the
// configured mode:
//   - OAEPAuto (default): OAEP on the token when it supports the hash, else
//     raw RSA on the token and OAEP removed here;
//   - OAEPToken: always on the token; a hash it lacks is ErrUnsupported,
//     for HSMs whose policy forbids CKM_RSA_X_509;
//   - OAEPRaw: always raw RSA plus constant-time OAEP here, the same code
//     path for every token.
//
// pecetd's config names the mode explicitly (token.oaep), so a deployment
// knows which code does the unpadding.
//
// Parsing is bounded like signer.Parse, and shares its BER normaliser
// (internal/cms): input size, nesting depth, recipients and
// attributes are checked before the work they guard, and OpenSSL's
// streamed BER (indefinite lengths, chunked encryptedContent) is read.
//
// # Streaming (EncryptWriter, DecryptReader)
//
// Bodies above the unary bounds (20 MiB, the gRPC message limit) are
// encrypted and decrypted as streams that hold O(chunk) bytes, never the
// body (64 KiB by default; Limits.MaxStream bounds a stream, 1 GiB by
// default). EncryptWriter writes EnvelopedData as BER with indefinite
// lengths and the encryptedContent as a constructed OCTET STRING of
// segments, the shape `openssl cms -encrypt -stream` writes.
// DecryptReader reads definite or indefinite lengths and a primitive or
// constructed encryptedContent (nested segments too), with the nesting
// depth, the segment count, the bytes before the content (RecipientInfos,
// originatorInfo: Limits.MaxHeader) and the whole stream bounded; it
// shares the RecipientInfo parser, the key transport and the
// implicit-rejection unwrapping with Decrypt, and runs the token operation
// once, before the content, so no token session is held while the content
// flows. It holds back the last plaintext block until the content ends and
// then checks the CBC padding in constant time; a bad padding is
// ErrDecrypt like every other failure. Plaintext is released before the
// end, which CBC allows (it is unauthenticated anyway): a caller that sees
// an error must discard what it read.
//
// AES-GCM (AuthEnvelopedData) is not streamed, either way (ErrStreamGCM).
// Its tag is checked only after the last byte, so streaming decryption
// would have to release unauthenticated plaintext, which is what GCM
// exists to prevent, or buffer the whole body, which is what streaming
// exists to avoid and what the unary Decrypt already does up to the
// message limit. pecet writes GCM only through the unary Encrypt (at most
// 20 MiB), so every GCM message pecet makes can be opened by the unary
// Decrypt.
//
// It does not: do key agreement (ECDH) or KEK/password recipients (they are
// skipped when reading), write subject-key-identifier recipients, handle
// detached encrypted content, or check the recipient's certificate chain
// (the caller decides whom to trust; the e-podání client encrypts to the
// certificate the office publishes).
package envelope
