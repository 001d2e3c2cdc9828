package envelope

import (
	"crypto"
	"crypto/subtle"
	"encoding/binary"
	"hash"
)

// Constant-time RSA decryption padding checks (RFC 8017 7.1.2 and 7.2.2).
//
// The token does only the raw private-key operation (CKM_RSA_X_509); the
// padding is checked here, with no branch and no memory access that depends
// on secret bytes, so neither the error nor the timing says whether the
// padding was good. The caller then takes the content key from a fixed
// position with subtle.ConstantTimeCopy, or the synthetic key (derived from
// the encrypted key, rejection.go) when the padding or the length was wrong
// (RFC 3218 2.3.2, "implicit rejection").

// unpadPKCS1 checks EM = 0x00 || 0x02 || PS || 0x00 || M with at least 8
// non-zero PS bytes. It returns valid (1 or 0) and the index of M's first
// byte (meaningful only when valid). Time depends only on len(em).
func unpadPKCS1(em []byte) (valid, msgIndex int) {
	if len(em) < 11 {
		return 0, 0
	}
	first := subtle.ConstantTimeByteEq(em[0], 0)
	second := subtle.ConstantTimeByteEq(em[1], 2)
	looking, zero := 1, 0
	for i := 2; i < len(em); i++ {
		isZero := subtle.ConstantTimeByteEq(em[i], 0)
		zero = subtle.ConstantTimeSelect(looking&isZero, i, zero)
		looking = subtle.ConstantTimeSelect(isZero, 0, looking)
	}
	// PS is em[2:zero]: at least 8 bytes.
	psOK := subtle.ConstantTimeLessOrEq(10, zero)
	valid = first & second & (looking ^ 1) & psOK
	return valid, zero + 1
}

// unpadOAEP checks EM = 0x00 || maskedSeed || maskedDB for hash h with MGF1
// over the same hash and the given label. It returns the unmasked block
// (same length as em; the caller clears it), valid, and the index of M's
// first byte in the block. Time depends only on len(em) and the hash.
func unpadOAEP(em []byte, h crypto.Hash, label []byte) (block []byte, valid, msgIndex int) {
	hLen := h.Size()
	k := len(em)
	block = make([]byte, k)
	if k < 2*hLen+2 {
		return block, 0, 0
	}
	copy(block, em)
	first := subtle.ConstantTimeByteEq(block[0], 0)
	seed, db := block[1:1+hLen], block[1+hLen:]
	hh := h.New()
	mgf1XOR(seed, hh, db)
	mgf1XOR(db, hh, seed)

	hh.Reset()
	hh.Write(label)
	lHash := hh.Sum(nil)
	lOK := subtle.ConstantTimeCompare(lHash, db[:hLen])

	// db = lHash' || PS (zeros) || 0x01 || M
	rest := db[hLen:]
	looking, one, bad := 1, 0, 0
	for i := range rest {
		isZero := subtle.ConstantTimeByteEq(rest[i], 0)
		isOne := subtle.ConstantTimeByteEq(rest[i], 1)
		one = subtle.ConstantTimeSelect(looking&isOne, i, one)
		looking = subtle.ConstantTimeSelect(isOne, 0, looking)
		bad = subtle.ConstantTimeSelect(looking&(isZero^1), 1, bad)
	}
	valid = first & lOK & (bad ^ 1) & (looking ^ 1)
	// M starts after 0x00, seed, lHash, PS and 0x01.
	return block, valid, 1 + hLen + hLen + one + 1
}

// mgf1XOR xors out with MGF1(seed) (RFC 8017 B.2.1).
func mgf1XOR(out []byte, h hash.Hash, seed []byte) {
	var counter [4]byte
	var digest []byte
	done := 0
	for done < len(out) {
		h.Reset()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}

// sessionKey returns the content key of keyLen bytes from a decrypted block
// em whose padding check gave (valid, msgIndex): the last keyLen bytes of
// em when the padding was valid and M is exactly keyLen bytes long, else
// the synthetic key. Constant time in everything but len(em) and keyLen.
func sessionKey(em []byte, valid, msgIndex int, synthetic []byte) []byte {
	keyLen := len(synthetic)
	out := make([]byte, keyLen)
	copy(out, synthetic)
	if keyLen > len(em) {
		return out
	}
	good := valid & subtle.ConstantTimeEq(int32(len(em)-msgIndex), int32(keyLen))
	subtle.ConstantTimeCopy(good, out, em[len(em)-keyLen:])
	return out
}
