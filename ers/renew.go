package ers

import (
	"crypto"
	"fmt"
	"slices"

	"github.com/pecet-hsm/pecet/tsa"
)

// Stamper time-stamps digest (made with h) and returns the DER
// TimeStampToken; pecet's TSA (tsa.Authority.Token) or another RFC 3161
// client.
type Stamper func(digest []byte, h crypto.Hash) (token []byte, err error)

// chainHash is the hash algorithm of a chain: its first ArchiveTimeStamp's
// digestAlgorithm, else its token's (RFC 4998 section 4.1).
func chainHash(chain []ArchiveTimeStamp) (crypto.Hash, error) {
	if h := chain[0].Hash; h != 0 {
		return h, nil
	}
	info, err := tsa.ParseToken(chain[0].TimeStamp)
	if err != nil {
		return 0, fmt.Errorf("%w: time-stamp: %w", ErrMalformed, err)
	}
	if err := checkHash(info.Hash); err != nil {
		return 0, err
	}
	return info.Hash, nil
}

func digest(h crypto.Hash, parts ...[]byte) []byte {
	d := h.New()
	for _, p := range parts {
		d.Write(p)
	}
	return d.Sum(nil)
}

// RenewTimeStamps is time-stamp renewal (RFC 4998 section 5.2) of a batch
// of records: the hash of each record's last ArchiveTimeStamp is a leaf of
// one new tree under the same hash algorithm, its root is time-stamped
// once, and each record's last chain gets a new ArchiveTimeStamp. Do it
// before the last time-stamp's TSA certificate expires or its signature
// algorithm weakens. The records' last chains must share one hash
// algorithm (ErrRenewal otherwise: renew such records in separate
// batches). Returns the renewed records in the order given.
func RenewTimeStamps(records [][]byte, stamp Stamper) ([][]byte, error) {
	if len(records) == 0 {
		return nil, ErrNoDocuments
	}
	rs := make([]*EvidenceRecord, len(records))
	leaves := make([][]byte, len(records))
	var h crypto.Hash
	for i, der := range records {
		r, err := Parse(der)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		last := r.Chains[len(r.Chains)-1]
		if len(last) == MaxStamps {
			return nil, fmt.Errorf("%w: record %d: its chain has %d archive time-stamps already; renew the hash tree", ErrTooLarge, i, MaxStamps)
		}
		ch, err := chainHash(last)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if i == 0 {
			h = ch
		} else if ch != h {
			return nil, fmt.Errorf("%w: record %d is under %v, record 0 under %v: renew them in separate batches", ErrRenewal, i, ch, h)
		}
		prev, err := atsDER(last[len(last)-1])
		if err != nil {
			return nil, err
		}
		rs[i], leaves[i] = r, digest(h, prev)
	}
	t, err := NewTree(leaves, h)
	if err != nil {
		return nil, err
	}
	token, err := stamp(t.Root(), h)
	if err != nil {
		return nil, fmt.Errorf("ers: time-stamping the renewal: %w", err)
	}
	out := make([][]byte, len(rs))
	for i, r := range rs {
		last := len(r.Chains) - 1
		r.Chains[last] = append(r.Chains[last], t.Stamp(i, token))
		if out[i], err = r.Marshal(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RenewHashTree is hash-tree renewal (RFC 4998 section 5.2) of a batch of
// records, when their hash algorithm ages: documentHashes[i] is record
// i's document hashed with h, the new algorithm. Each leaf is h(document
// hash || h(DER of the record's ArchiveTimeStampSequence)), the root of
// one new tree is time-stamped once, and each record gets a new
// ArchiveTimeStampChain. Returns the renewed records in the order given.
func RenewHashTree(records, documentHashes [][]byte, h crypto.Hash, stamp Stamper) ([][]byte, error) {
	if len(records) == 0 {
		return nil, ErrNoDocuments
	}
	if len(documentHashes) != len(records) {
		return nil, fmt.Errorf("%w: %d records and %d document hashes", ErrHash, len(records), len(documentHashes))
	}
	if err := checkHash(h); err != nil {
		return nil, err
	}
	rs := make([]*EvidenceRecord, len(records))
	leaves := make([][]byte, len(records))
	for i, der := range records {
		if len(documentHashes[i]) != h.Size() {
			return nil, fmt.Errorf("%w: document %d has %d bytes, %v makes %d", ErrHash, i, len(documentHashes[i]), h, h.Size())
		}
		r, err := Parse(der)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if len(r.Chains) == MaxChains {
			return nil, fmt.Errorf("%w: record %d has %d archive time-stamp chains already", ErrTooLarge, i, MaxChains)
		}
		seq, err := sequenceDER(r.Chains)
		if err != nil {
			return nil, err
		}
		rs[i], leaves[i] = r, digest(h, documentHashes[i], digest(h, seq))
	}
	t, err := NewTree(leaves, h)
	if err != nil {
		return nil, err
	}
	token, err := stamp(t.Root(), h)
	if err != nil {
		return nil, fmt.Errorf("ers: time-stamping the renewal: %w", err)
	}
	out := make([][]byte, len(rs))
	for i, r := range rs {
		if !slices.Contains(r.DigestAlgorithms, h) {
			if len(r.DigestAlgorithms) == MaxDigestAlgorithms {
				return nil, fmt.Errorf("%w: record %d has %d digest algorithms already", ErrTooLarge, i, MaxDigestAlgorithms)
			}
			r.DigestAlgorithms = append(r.DigestAlgorithms, h)
		}
		r.Chains = append(r.Chains, []ArchiveTimeStamp{t.Stamp(i, token)})
		if out[i], err = r.Marshal(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
