package cms

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
)

func TestECDSARawToDER(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("pecet"))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])

	tests := []struct {
		name    string
		raw     []byte
		wantErr error
		want    []byte // nil: checked by verifying the signature
	}{
		{"P-256 signature", raw, nil, nil},
		// Leading zeros are dropped and a high bit gets a 0x00 pad: the
		// minimal DER INTEGER, as asn1.Marshal of a big.Int writes it.
		{"zero and high bit", []byte{0x00, 0x00, 0x80, 0x01}, nil, mustMarshal(t, 0, 0x8001)},
		{"empty", nil, ErrECDSALength, nil},
		{"odd length", raw[:63], ErrECDSALength, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := ECDSARawToDER(tt.raw)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			switch {
			case tt.wantErr != nil:
			case tt.want != nil:
				if !bytes.Equal(der, tt.want) {
					t.Fatalf("DER %x, want %x", der, tt.want)
				}
			default:
				if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], der) {
					t.Fatal("the converted signature does not verify")
				}
			}
		})
	}
}

func mustMarshal(t *testing.T, r, s int64) []byte {
	t.Helper()
	der, err := asn1.Marshal(struct{ R, S *big.Int }{big.NewInt(r), big.NewInt(s)})
	if err != nil {
		t.Fatal(err)
	}
	return der
}
