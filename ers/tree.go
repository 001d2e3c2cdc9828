package ers

import (
	"crypto"
	"fmt"
	"slices"
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
	t := &Tree{h: h, levels: [][]byte{level}}
	for n := len(level) / size; n > 1; n = (n + 1) / 2 {
		next := make([]byte, 0, (n+1)/2*size)
		for j := 0; j < n; j += 2 {
			if j+1 == n {
				next = append(next, level[j*size:(j+1)*size]...)
				continue
			}
			next = append(next, nodeHash(h, [][]byte{level[j*size : (j+1)*size], level[(j+1)*size : (j+2)*size]})...)
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
// token over Root).
func (t *Tree) Record(i int, token []byte) ([]byte, error) {
	r := &EvidenceRecord{Version: 1, DigestAlgorithms: []crypto.Hash{t.h}, Chains: [][]ArchiveTimeStamp{{t.Stamp(i, token)}}}
	return r.Marshal()
}

// StampDER is the DER ArchiveTimeStamp of leaf i under token: what a
// renewal adds to record i (AppendRenewal).
func (t *Tree) StampDER(i int, token []byte) ([]byte, error) {
	return atsDER(t.Stamp(i, token))
}
