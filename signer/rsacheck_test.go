package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // a hash the check must refuse exactly as crypto/rsa does
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
)

// ownSignatureMessage is what a failed self-check has always said; the
// server logs it and answers Internal (grpcerr maps no sentinel to it).
const ownSignatureMessage = "signer: the key's signature does not verify with its certificate"

// rsaCheckKey is a test key of the differential tests.
type rsaCheckKey struct {
	name string
	key  *rsa.PrivateKey
}

type rsaKeySpec struct{ bits, e int }

var (
	rsaCheckKeysMu    sync.Mutex
	rsaCheckKeysCache = map[rsaKeySpec]*rsa.PrivateKey{}
)

// allRSACheckKeys are the sizes pecet's tokens hold, and exponents other
// than 65537 (3, the smallest, and 2³¹−1, the largest crypto/rsa accepts)
// on keys above 2048 bits, which the math/big path checks.
var allRSACheckKeys = []rsaKeySpec{{2048, 65537}, {3072, 65537}, {4096, 65537}, {3072, 3}, {3072, 1<<31 - 1}}

// rsaCheckKeys returns keys of the given specs (all of allRSACheckKeys
// when none), each made once per test binary: a 4096-bit key takes
// seconds.
func rsaCheckKeys(t testing.TB, specs ...rsaKeySpec) []rsaCheckKey {
	t.Helper()
	if len(specs) == 0 {
		specs = allRSACheckKeys
	}
	rsaCheckKeysMu.Lock()
	defer rsaCheckKeysMu.Unlock()
	var out []rsaCheckKey
	for _, sp := range specs {
		key, ok := rsaCheckKeysCache[sp]
		if !ok {
			var err error
			if key, err = rsaKeyWithExponent(sp.bits, sp.e); err != nil {
				t.Fatal(err)
			}
			rsaCheckKeysCache[sp] = key
		}
		out = append(out, rsaCheckKey{fmt.Sprintf("RSA-%d e=%d", sp.bits, sp.e), key})
	}
	return out
}

// rsaKeyWithExponent makes an RSA key with public exponent e
// (rsa.GenerateKey always uses 65537).
func rsaKeyWithExponent(bits, e int) (*rsa.PrivateKey, error) {
	if e == 65537 {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	for {
		p, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			return nil, err
		}
		q, err := rand.Prime(rand.Reader, bits/2)
		if err != nil {
			return nil, err
		}
		n := new(big.Int).Mul(p, q)
		if p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		d := new(big.Int).ModInverse(E, phi)
		if d == nil {
			continue
		}
		key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: e}, D: d, Primes: []*big.Int{p, q}}
		if err := key.Validate(); err != nil {
			return nil, err
		}
		key.Precompute()
		return key, nil
	}
}

// rawSign is the RSA private operation on em without padding (m^d mod n
// by the CRT): the way to make signatures over encodings no correct
// signer would produce.
func rawSign(key *rsa.PrivateKey, em []byte) []byte {
	m := new(big.Int).SetBytes(em)
	m.Mod(m, key.N)
	p, q := key.Primes[0], key.Primes[1]
	m1 := new(big.Int).Exp(m, key.Precomputed.Dp, p)
	m2 := new(big.Int).Exp(m, key.Precomputed.Dq, q)
	h := m1.Sub(m1, m2)
	h.Mul(h, key.Precomputed.Qinv).Mod(h, p)
	s := h.Mul(h, q).Add(h, m2)
	return s.FillBytes(make([]byte, key.Size()))
}

// testDigestInfoPrefix is the DER of a DigestInfo up to the digest, written
// out here from RFC 8017 9.2 note 1 (not taken from the code under test).
var testDigestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// testEM is EMSA-PKCS1-v1_5 of digest for a k-byte modulus:
// 00 01 FF…FF 00 DigestInfo.
func testEM(k int, h crypto.Hash, digest []byte) []byte {
	t := append(append([]byte{}, testDigestInfoPrefix[h]...), digest...)
	em := make([]byte, k)
	em[1] = 1
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[k-len(t):], t)
	return em
}

func digestOf(h crypto.Hash, msg string) []byte {
	switch h {
	case crypto.SHA1:
		s := sha1.Sum([]byte(msg)) //nolint:gosec // see the import
		return s[:]
	case crypto.SHA256:
		s := sha256.Sum256([]byte(msg))
		return s[:]
	case crypto.SHA384:
		s := sha512.Sum384([]byte(msg))
		return s[:]
	case crypto.SHA512:
		s := sha512.Sum512([]byte(msg))
		return s[:]
	}
	return []byte(msg)
}

// checkAgainstStdlib is the differential: CheckOwnSignature accepts
// exactly what rsa.VerifyPKCS1v15 accepts, and fails with the error it
// has always returned.
func checkAgainstStdlib(t *testing.T, name string, pub *rsa.PublicKey, h crypto.Hash, digest, sig []byte) (accepted bool) {
	t.Helper()
	want := rsa.VerifyPKCS1v15(pub, h, digest, sig) == nil
	err := CheckOwnSignature(pub, h, digest, sig)
	if (err == nil) != want {
		t.Errorf("%s: CheckOwnSignature says %v, rsa.VerifyPKCS1v15 accepts: %v", name, err, want)
	}
	if err != nil && (!errors.Is(err, errOwnSignature) || err.Error() != ownSignatureMessage) {
		t.Errorf("%s: error %q, want errOwnSignature %q", name, err, ownSignatureMessage)
	}
	return want
}

// TestCheckOwnSignatureRSADifferential: the RSA self-check (the RSA-CRT
// fault countermeasure, docs/security.md "RSA self-check") accepts exactly
// the signatures crypto/rsa.VerifyPKCS1v15 accepts: valid ones of every
// hash pecet signs with, and no bit flip, wrong digest, wrong hash, value
// at or above the modulus, short, long, zero or wrongly padded one.
func TestCheckOwnSignatureRSADifferential(t *testing.T) {
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range rsaCheckKeys(t) {
		t.Run(k.name, func(t *testing.T) {
			key, pub, n := k.key, &k.key.PublicKey, k.key.Size()
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				digest := digestOf(h, "pecet "+k.name)
				sig, err := rsa.SignPKCS1v15(nil, key, h, digest)
				if err != nil {
					t.Fatal(err)
				}
				if got := rawSign(key, testEM(n, h, digest)); string(got) != string(sig) {
					t.Fatalf("%v: the test's own encoding differs from crypto/rsa's", h)
				}
				plusN := new(big.Int).Add(new(big.Int).SetBytes(sig), pub.N).Bytes()
				nMinus1 := new(big.Int).Sub(pub.N, big.NewInt(1)).FillBytes(make([]byte, n))
				otherSig, err := rsa.SignPKCS1v15(nil, other, h, digest)
				if err != nil {
					t.Fatal(err)
				}
				wrongHash := crypto.SHA512
				if h == crypto.SHA512 {
					wrongHash = crypto.SHA256
				}
				em := testEM(n, h, digest)
				smallDigest, smallSig := rawSignSmall(key, h, digest)
				bad := func(edit func(em []byte) []byte) []byte {
					return rawSign(key, edit(append([]byte{}, em...)))
				}
				cases := []struct {
					name   string
					h      crypto.Hash
					digest []byte
					sig    []byte
					valid  bool
				}{
					{"valid", h, digest, sig, true},
					{"wrong digest", h, digestOf(h, "other"), sig, false},
					{"digest a byte short", h, digest[1:], sig, false},
					{"digest a byte long", h, append(append([]byte{}, digest...), 0), sig, false},
					{"no digest", h, nil, sig, false},
					{"wrong hash, its length", wrongHash, digestOf(wrongHash, "pecet "+k.name), sig, false},
					{"wrong hash, the same digest", crypto.SHA512_256, digest[:32], sig, false},
					{"SHA-1 over the digest's prefix", crypto.SHA1, digest[:20], sig, false},
					{"raw digest (hash 0)", 0, digest, sig, false},
					{"signature + N", h, digest, plusN, false},
					{"signature + N, k bytes", h, smallDigest, new(big.Int).Add(new(big.Int).SetBytes(smallSig), pub.N).Bytes(), false},
					{"N", h, digest, pub.N.Bytes(), false},
					{"N-1", h, digest, nMinus1, false},
					{"all ones", h, digest, bytesOf(n, 0xff), false},
					{"zero", h, digest, make([]byte, n), false},
					{"one", h, digest, new(big.Int).SetInt64(1).FillBytes(make([]byte, n)), false},
					{"empty", h, digest, nil, false},
					{"a byte short", h, digest, sig[1:], false},
					{"leading zero byte, full length", h, smallDigest, smallSig, true},
					{"leading zero byte dropped", h, smallDigest, smallSig[1:], false},
					{"leading zero byte added", h, digest, append([]byte{0}, sig...), false},
					{"trailing byte added", h, digest, append(append([]byte{}, sig...), 0), false},
					{"another key's signature", h, digest, otherSig, false},
					{"block type 2", h, digest, bad(func(em []byte) []byte { em[1] = 2; return em }), false},
					{"a padding byte FE", h, digest, bad(func(em []byte) []byte { em[5] = 0xfe; return em }), false},
					{"no zero separator", h, digest, bad(func(em []byte) []byte {
						t := len(testDigestInfoPrefix[h]) + len(digest)
						em[n-t-1] = 0xff
						return em
					}), false},
					{"DigestInfo without NULL parameters", h, digest, bad(func(em []byte) []byte {
						// 30 2f 30 0b 06 09 <oid> 04 20 <digest>, two more FF bytes
						p := testDigestInfoPrefix[h]
						t := append([]byte{p[0], p[1] - 2, p[2], p[3] - 2}, p[4:15]...)
						t = append(append(t, p[17:]...), digest...)
						out := make([]byte, n)
						out[1] = 1
						for i := 2; i < n-len(t)-1; i++ {
							out[i] = 0xff
						}
						copy(out[n-len(t):], t)
						return out
					}), false},
					{"the DigestInfo of the SHA-3 hash of that size", h, digest, bad(func(em []byte) []byte {
						// id-sha256 …2.1 → id-sha3-256 …2.8 (and so on): same length
						em[n-len(digest)-len(testDigestInfoPrefix[h])+14] += 7
						return em
					}), false},
					{"a byte after the digest", h, digest, bad(func(em []byte) []byte {
						copy(em[2:], em[3:]) // one FF less, the rest a byte to the left
						em[n-1] = 0
						return em
					}), false},
					{"leading byte 01", h, digest, bad(func(em []byte) []byte { em[0] = 1; return em }), false},
				}
				for _, c := range cases {
					if got := checkAgainstStdlib(t, fmt.Sprintf("%v %s", h, c.name), pub, c.h, c.digest, c.sig); got != c.valid {
						t.Errorf("%v %s: rsa.VerifyPKCS1v15 accepts %v, the case says %v", h, c.name, got, c.valid)
					}
				}
				if h != crypto.SHA256 {
					continue // every bit, once per key
				}
				flipped := append([]byte{}, sig...)
				for i := range 8 * n {
					flipped[i/8] ^= 1 << (i % 8)
					if checkAgainstStdlib(t, fmt.Sprintf("bit %d flipped", i), pub, h, digest, flipped) {
						t.Fatalf("bit %d flipped: accepted", i)
					}
					flipped[i/8] ^= 1 << (i % 8)
				}
			}
		})
	}
}

// rawSignSmall returns a digest, near the one given, whose signature
// has a leading zero byte, and that signature: dropping that byte keeps
// its value but not its length (RFC 8017 8.2.2 step 1).
func rawSignSmall(key *rsa.PrivateKey, h crypto.Hash, digest []byte) ([]byte, []byte) {
	d := append([]byte{}, digest...)
	for i := 0; ; i++ {
		d[len(d)-1] = byte(i)
		d[len(d)-2] = byte(i >> 8)
		if s := rawSign(key, testEM(key.Size(), h, d)); s[0] == 0 {
			return d, s
		}
	}
}

func bytesOf(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// TestCheckOwnSignatureOtherKeys: the keys outside the fast path
// (below 2048 bits, even modulus or exponent, ECDSA, a type pecet does
// not sign with) are judged as before.
func TestCheckOwnSignatureOtherKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	digest := digestOf(crypto.SHA256, "pecet")
	sig, err := rsa.SignPKCS1v15(nil, small, crypto.SHA256, digest)
	if err != nil {
		t.Fatal(err)
	}
	// 3072 bits: the keys checked with math/big, where these limits matter.
	key := rsaCheckKeys(t, rsaKeySpec{3072, 65537})[0].key
	sig3072, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest)
	if err != nil {
		t.Fatal(err)
	}
	em := testEM(key.Size(), crypto.SHA256, digest)
	evenN := &rsa.PublicKey{N: new(big.Int).Add(key.N, big.NewInt(1)), E: 65537}
	for _, c := range []struct {
		name string
		pub  *rsa.PublicKey
		sig  []byte
	}{
		{"RSA-1024", &small.PublicKey, sig},
		{"even modulus", evenN, sig3072},
		{"even exponent", &rsa.PublicKey{N: key.N, E: 65536}, sig3072},
		{"exponent 1", &rsa.PublicKey{N: key.N, E: 1}, sig3072},
		{"exponent 1, the encoding as signature", &rsa.PublicKey{N: key.N, E: 1}, em},
		{"exponent above 2^31-1", &rsa.PublicKey{N: key.N, E: 1 << 31}, sig3072},
		{"no modulus", &rsa.PublicKey{E: 65537}, sig3072},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.pub.N == nil { // rsa.VerifyPKCS1v15 reports it; the check must not panic either
				if err := CheckOwnSignature(c.pub, crypto.SHA256, digest, c.sig); !errors.Is(err, errOwnSignature) {
					t.Fatalf("%v", err)
				}
				return
			}
			checkAgainstStdlib(t, c.name, c.pub, crypto.SHA256, digest, c.sig)
		})
	}

	ec := newKey(t, p256).(*ecdsa.PrivateKey)
	ecSig, err := ecdsa.SignASN1(rand.Reader, ec, digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckOwnSignature(&ec.PublicKey, crypto.SHA256, digest, ecSig); err != nil {
		t.Errorf("ECDSA: %v", err)
	}
	if err := CheckOwnSignature(&ec.PublicKey, crypto.SHA256, digestOf(crypto.SHA256, "other"), ecSig); !errors.Is(err, errOwnSignature) {
		t.Errorf("ECDSA, wrong digest: %v", err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckOwnSignature(edPub, crypto.SHA256, digest, make([]byte, 64)); !errors.Is(err, errOwnSignature) {
		t.Errorf("Ed25519: %v", err)
	}
}

// FuzzCheckOwnSignatureRSA is the differential against
// rsa.VerifyPKCS1v15 on fuzzed input: mode 0 takes data as the signature,
// mode 1 flips the bits of data into a valid signature, mode 2 signs data
// as the encoded message (so the fuzzer explores encodings that the key
// really signed).
func FuzzCheckOwnSignatureRSA(f *testing.F) {
	// Not RSA-4096: making it is seconds in every fuzz worker.
	keys := rsaCheckKeys(f, rsaKeySpec{2048, 65537}, rsaKeySpec{3072, 65537}, rsaKeySpec{3072, 3}, rsaKeySpec{3072, 1<<31 - 1})
	hashes := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA1, 0}
	for ki, k := range keys {
		for hi, h := range hashes[:3] {
			d := digestOf(h, "seed")
			em := testEM(k.key.Size(), h, d)
			f.Add(uint8(ki), uint8(hi), uint8(2), d, em)
			f.Add(uint8(ki), uint8(hi), uint8(1), d, []byte{0, 0, 1})
			f.Add(uint8(ki), uint8(hi), uint8(0), d, rawSign(k.key, em))
		}
	}
	f.Fuzz(func(t *testing.T, ki, hi, mode uint8, digest, data []byte) {
		k := keys[int(ki)%len(keys)]
		h := hashes[int(hi)%len(hashes)]
		n := k.key.Size()
		if len(data) > 2*n || len(digest) > 128 {
			return
		}
		var sig []byte
		switch mode % 3 {
		case 0:
			sig = data
		case 1:
			if h == 0 || len(digest) != h.Size() {
				return
			}
			s, err := rsa.SignPKCS1v15(nil, k.key, h, digest)
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range data {
				s[i%n] ^= b
			}
			sig = s
		case 2:
			sig = rawSign(k.key, data)
		}
		checkAgainstStdlib(t, k.name, &k.key.PublicKey, h, digest, sig)
	})
}
