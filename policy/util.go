package policy

import (
	"bytes"
	"encoding/pem"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// pemOrDER returns the first PEM block of the given type when data is PEM,
// else data itself.
func pemOrDER(data []byte, typ string) []byte {
	if !bytes.Contains(data, []byte("-----BEGIN")) {
		return data
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return data
		}
		if b.Type == typ {
			return b.Bytes
		}
	}
}

// ecdsaDER encodes r and s as an ASN.1 ECDSA-Sig-Value.
func ecdsaDER(r, s []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(r))
		b.AddASN1BigInt(new(big.Int).SetBytes(s))
	})
	return b.Bytes()
}
