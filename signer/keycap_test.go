package signer

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/policy"
)

// TestRSAKeyCap: a signer's RSA key above policy.MaxRSAModulusBits is
// refused unverified (WEAK_ALGORITHM): a certificate of a few kilobytes
// can carry a modulus whose verification takes seconds
// (docs/security.md "Work budget per verification").
func TestRSAKeyCap(t *testing.T) {
	buf := make([]byte, (policy.MaxRSAModulusBits+1024)/8)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	buf[0] |= 0x80
	buf[len(buf)-1] |= 1
	huge := &rsa.PublicKey{N: new(big.Int).SetBytes(buf), E: 65537}
	digest := make([]byte, 32)
	for _, sc := range []scheme{
		{name: "sha256WithRSAEncryption", kind: rsaPKCS1, hash: crypto.SHA256},
		{name: "RSASSA-PSS", kind: rsaPSS, hash: crypto.SHA256, saltLen: 32},
	} {
		code, msg := checkSignature(huge, sc, digest, buf)
		if code != policy.CodeWeakAlgorithm || !strings.Contains(msg, "8192") {
			t.Errorf("%s: %s %q, want WEAK_ALGORITHM naming the 8192-bit cap", sc.name, code, msg)
		}
	}
}
