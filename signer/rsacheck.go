package signer

import (
	"bytes"
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"
)

// The RSA self-check (Options.RSACheck) runs once for every RSA signature
// pecet makes. crypto/rsa does its public-key operation with a Montgomery
// modulus it rebuilds from the *rsa.PublicKey on every call
// (bigmod.NewModulus, a quarter of the check at 2048 bits) and, above
// 2048 bits, with portable Go loops instead of its assembly kernels:
// RSA-3072 and RSA-4096 checks cost 240 and 350 µs. math/big, in
// variable time, does the same exponentiation in 85 and 135 µs. Variable
// time is safe here because every input is public (a signature about to
// be handed out, the key's certificate, the digest it signs), and the
// check stays exact: it builds the one EMSA-PKCS1-v1_5 encoding for that
// key, hash and digest (RFC 8017 8.2.2, 9.2) and compares s^e mod N with
// it byte for byte, as crypto/rsa does. Up to 2048 bits crypto/rsa is as
// fast as math/big, also with the Montgomery constants cached per key,
// so it keeps those keys. The measurements are in docs/performance.md
// "Where a call's time goes (CPU profile, sign-digest at c16)"; the rule
// in docs/security.md "RSA self-check"; the differential test against
// rsa.VerifyPKCS1v15 is TestCheckOwnSignatureRSADifferential, with
// FuzzCheckOwnSignatureRSA.

// digestInfoPrefix is, for each hash pecet signs with, the DER of
// DigestInfo ::= SEQUENCE { AlgorithmIdentifier (with NULL parameters),
// OCTET STRING } up to the digest itself (RFC 8017 9.2 note 1).
var digestInfoPrefix = func() map[crypto.Hash][]byte {
	m := map[crypto.Hash][]byte{}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		o, _ := digestOID(h)
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addAlgorithm(b, o, derNull())
			b.AddASN1OctetString(make([]byte, h.Size()))
		})
		der := b.BytesOrPanic() // fixed input: a failure is a programming error
		m[h] = der[:len(der)-h.Size()]
	}
	return m
}()

// verifyOwnPKCS1v15 reports whether sig is the RSASSA-PKCS1-v1_5
// signature of digest with hash h under pub; it accepts exactly what
// rsa.VerifyPKCS1v15 accepts. What math/big does not pay off for or
// does not cover goes to crypto/rsa: keys up to 2048 bits, another hash,
// a key crypto/rsa would refuse or treat specially (above
// policy.MaxRSAModulusBits, an even modulus, an exponent that is even,
// below 3 or above 2³¹−1), and FIPS 140-3 mode, where the validated
// module must do the operation.
func verifyOwnPKCS1v15(pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) bool {
	prefix, ok := digestInfoPrefix[h]
	if !ok || pub.N == nil || fips140.Enabled() ||
		pub.N.BitLen() <= 2048 || pub.N.BitLen() > policy.MaxRSAModulusBits || pub.N.Bit(0) == 0 ||
		pub.E < 3 || pub.E > 1<<31-1 || pub.E&1 == 0 {
		return rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	}
	k := (pub.N.BitLen() + 7) / 8
	if len(digest) != h.Size() || len(sig) != k {
		return false
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return false
	}
	em := s.Exp(s, big.NewInt(int64(pub.E)), pub.N).FillBytes(make([]byte, k))
	// EM = 00 01 FF…FF 00 DigestInfo; above 2048 bits the padding is far
	// longer than the 8 bytes RFC 8017 9.2 step 5 requires.
	ps := k - len(prefix) - len(digest) - 1
	if em[0] != 0 || em[1] != 1 || em[ps] != 0 {
		return false
	}
	for _, b := range em[2:ps] {
		if b != 0xff {
			return false
		}
	}
	return bytes.Equal(em[ps+1:k-len(digest)], prefix) && bytes.Equal(em[k-len(digest):], digest)
}
