package ers

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"fmt"
	"slices"

	"github.com/pecet-hsm/pecet/tsa"
)

// Tree is the binary hash tree of RFC 4998 section 4.2 over a batch of
// leaves: documents' hashes (Seal), previous archive time-stamps' hashes
// (time-stamp renewal) or documents' hashes bound to their old chains
// (hash-tree renewal). All levels are kept as flat byte slices, so a tree
// of n leaves holds about 2n hashes and no per-node allocation; a record's
// reduced tree is read from it when the record is written.
type Tree struct {
	h      crypto.Hash
	levels [][]byte // levels[0] the leaves, each level h.Size() bytes a node
	oidDER []byte   // the DER of h's OID, for Record
}

// NewTree builds the tree over leaves (each h.Size() bytes). A node left
// without a sibling at a level is carried up unchanged.
func NewTree(leaves [][]byte, h crypto.Hash) (*Tree, error) {
	if len(leaves) == 0 {
		return nil, ErrNoDocuments
	}
	if err := checkHash(h); err != nil {
		return nil, err
	}
	size := h.Size()
	level := make([]byte, 0, len(leaves)*size)
	for i, d := range leaves {
		if len(d) != size {
			return nil, fmt.Errorf("%w: document %d has %d bytes, %v makes %d", ErrHash, i, len(d), h, size)
		}
		level = append(level, d...)
	}
	return NewTreeFlat(level, h)
}

// NewTreeFlat builds the tree over leaves given as one slice of hashes
// one after the other (h.Size() bytes each), which the tree then owns: a
// streamed batch is held this way, without a slice per hash.
func NewTreeFlat(level []byte, h crypto.Hash) (*Tree, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	size := h.Size()
	if len(level) == 0 {
		return nil, ErrNoDocuments
	}
	if len(level)%size != 0 {
		return nil, fmt.Errorf("%w: %d bytes of leaves are not whole %v hashes", ErrHash, len(level), h)
	}
	oid, _ := tsa.HashOID(h) // checkHash made sure there is one
	oidDER, err := asn1.Marshal(oid)
	if err != nil {
		return nil, err
	}
	t := &Tree{h: h, levels: [][]byte{level}, oidDER: oidDER}
	d := h.New() // one hasher for the whole tree
	for n := len(level) / size; n > 1; n = (n + 1) / 2 {
		next := make([]byte, 0, (n+1)/2*size)
		for j := 0; j < n; j += 2 {
			if j+1 == n {
				next = append(next, level[j*size:(j+1)*size]...)
				continue
			}
			// nodeHash of two children: sorted, concatenated, hashed.
			a, b := level[j*size:(j+1)*size], level[(j+1)*size:(j+2)*size]
			if bytes.Compare(a, b) > 0 {
				a, b = b, a
			}
			d.Reset()
			d.Write(a)
			d.Write(b)
			next = d.Sum(next)
		}
		t.levels = append(t.levels, next)
		level = next
	}
	return t, nil
}

// Len is the number of leaves.
func (t *Tree) Len() int { return len(t.levels[0]) / t.h.Size() }

// Hash is the tree's hash algorithm.
func (t *Tree) Hash() crypto.Hash { return t.h }

// Root is the root hash, what the time-stamp covers.
func (t *Tree) Root() []byte { return slices.Clone(t.levels[len(t.levels)-1]) }

func (t *Tree) node(level, i int) []byte {
	size := t.h.Size()
	return t.levels[level][i*size : (i+1)*size]
}

// Path is the reduced hash tree of leaf i (RFC 4998 section 4.2 step 4):
// the first list holds the leaf and its sibling, then each list the
// sibling of the node on the way up; nil for a tree of one leaf.
func (t *Tree) Path(i int) [][][]byte {
	if len(t.levels) == 1 {
		return nil
	}
	var path [][][]byte
	p := i
	for l := 0; l < len(t.levels)-1; l++ {
		n := len(t.levels[l]) / t.h.Size()
		if sib := p ^ 1; sib < n {
			if len(path) == 0 {
				path = append(path, [][]byte{t.node(l, p), t.node(l, sib)})
			} else {
				path = append(path, [][]byte{t.node(l, sib)})
			}
		}
		p /= 2
	}
	return path
}

// Stamp is the ArchiveTimeStamp of leaf i under token.
func (t *Tree) Stamp(i int, token []byte) ArchiveTimeStamp {
	return ArchiveTimeStamp{Hash: t.h, ReducedHashtree: t.Path(i), TimeStamp: token}
}

// Record is the DER EvidenceRecord of document i sealed under token (the
// token over Root): the bytes EvidenceRecord.Marshal writes for it
// (TestTreeRecordIsMarshal), written in one allocation, since a batch of
// 100,000 records is most of the work of sealing it (docs/archive.md
// "Performance").
func (t *Tree) Record(i int, token []byte) ([]byte, error) {
	oidDER := t.oidDER
	algLen := len(oidDER) + 2 // the OID and NULL
	size := t.h.Size()
	// The reduced tree: a SEQUENCE of OCTET STRINGs per level where the
	// node has a sibling (two hashes in the first, one after).
	type level struct{ l, p int }
	lv := make([]level, 0, len(t.levels))
	treeLen, p := 0, i
	for l := 0; l < len(t.levels)-1; l++ {
		if sib := p ^ 1; sib < len(t.levels[l])/size {
			k := 1
			if len(lv) == 0 {
				k = 2
			}
			lv = append(lv, level{l, p})
			treeLen += tlvLen(k * (2 + size))
		}
		p /= 2
	}
	atsLen := tlvLen(algLen) + len(token)
	if len(t.levels) > 1 {
		atsLen += tlvLen(treeLen)
	}
	chainLen := tlvLen(atsLen) // the chain's content: one ArchiveTimeStamp
	seqLen := tlvLen(chainLen) // the sequence's content: one chain
	recLen := 3 + tlvLen(tlvLen(algLen)) + tlvLen(seqLen)
	b := make([]byte, 0, tlvLen(recLen))
	b = appendHeader(b, 0x30, recLen)
	b = append(b, 0x02, 0x01, 0x01) // version 1
	b = appendHeader(b, 0x30, tlvLen(algLen))
	b = appendAlg(b, 0x30, oidDER)
	b = appendHeader(b, 0x30, seqLen)
	b = appendHeader(b, 0x30, chainLen)
	b = appendHeader(b, 0x30, atsLen)
	b = appendAlg(b, 0xa0, oidDER)
	if len(t.levels) > 1 {
		b = appendHeader(b, 0xa2, treeLen)
		for k, x := range lv {
			n := 1
			if k == 0 {
				n = 2
			}
			b = appendHeader(b, 0x30, n*(2+size))
			if k == 0 {
				b = append(b, 0x04, byte(size))
				b = append(b, t.node(x.l, x.p)...)
			}
			b = append(b, 0x04, byte(size))
			b = append(b, t.node(x.l, x.p^1)...)
		}
	}
	b = append(b, token...)
	return b, nil
}

// headerLen is the size of a DER tag and length for n content bytes.
func headerLen(n int) int {
	switch {
	case n < 0x80:
		return 2
	case n < 0x100:
		return 3
	case n < 0x10000:
		return 4
	case n < 0x1000000:
		return 5
	}
	return 6
}

// tlvLen is the size of a DER element of n content bytes.
func tlvLen(n int) int { return headerLen(n) + n }

func appendHeader(b []byte, tag byte, n int) []byte {
	b = append(b, tag)
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n < 0x100:
		return append(b, 0x81, byte(n))
	case n < 0x10000:
		return append(b, 0x82, byte(n>>8), byte(n))
	case n < 0x1000000:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendAlg appends an AlgorithmIdentifier {oid, NULL} under tag.
func appendAlg(b []byte, tag byte, oidDER []byte) []byte {
	b = appendHeader(b, tag, len(oidDER)+2)
	b = append(b, oidDER...)
	return append(b, 0x05, 0x00)
}

// StampDER is the DER ArchiveTimeStamp of leaf i under token: what a
// renewal adds to record i (AppendRenewal).
func (t *Tree) StampDER(i int, token []byte) ([]byte, error) {
	return atsDER(t.Stamp(i, token))
}
