package cms

import (
	"errors"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrECDSALength is returned for a raw ECDSA signature that is empty or of
// odd length, so cannot be split into r and s of equal size.
var ErrECDSALength = errors.New("cms: raw ECDSA signature is empty or of odd length")

// ECDSARawToDER turns a raw ECDSA signature r‖s, r and s each half of raw
// (the form PKCS#11 CKM_ECDSA and XMLDSig, RFC 4050, use), into the ASN.1
// ECDSA-Sig-Value SEQUENCE { r INTEGER, s INTEGER } that crypto/ecdsa, X.509
// and CMS use. The caller checks raw's length against the curve where it
// knows the curve.
func ECDSARawToDER(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, ErrECDSALength
	}
	n := len(raw) / 2
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[:n]))
		b.AddASN1BigInt(new(big.Int).SetBytes(raw[n:]))
	})
	return b.Bytes()
}
