package tsa

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
)

// serialBytes is the length of every serial: 160 bits, the most RFC 3161
// 2.4.2 lets a client expect to handle.
const serialBytes = 20

// serials makes serial numbers unique across replicas and restarts with no
// coordination. Each is 20 bytes:
//
//	bytes  0-7   instance prefix: 62 random bits chosen when the Authority
//	             starts, the top two bits 01 so the number is positive and
//	             always 20 bytes long;
//	bytes  8-15  64 fresh random bits per token (unpredictable serials);
//	bytes 16-19  a per-instance counter.
//
// Within an instance the (prefix, counter) pair never repeats for 2^32
// tokens, and beyond that the 64 fresh bits still differ. Two instances
// collide only if their 62-bit prefixes are equal and, at the same counter,
// their 64 fresh bits too. The caller serialises next (the Authority holds
// its mutex).
type serials struct {
	rand    io.Reader
	prefix  [8]byte
	counter uint32
}

func newSerials(r io.Reader) (*serials, error) {
	if r == nil {
		r = rand.Reader
	}
	s := &serials{rand: r}
	if _, err := io.ReadFull(r, s.prefix[:]); err != nil {
		return nil, fmt.Errorf("tsa: serial prefix: %w", err)
	}
	s.prefix[0] = s.prefix[0]&0x3f | 0x40
	return s, nil
}

func (s *serials) next() (*big.Int, error) {
	var b [serialBytes]byte
	copy(b[:8], s.prefix[:])
	if _, err := io.ReadFull(s.rand, b[8:16]); err != nil {
		return nil, fmt.Errorf("tsa: serial: %w", err)
	}
	s.counter++
	binary.BigEndian.PutUint32(b[16:], s.counter)
	return new(big.Int).SetBytes(b[:]), nil
}
