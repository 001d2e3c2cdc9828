package ers

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"

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

// TimeStampLeaf is a record's leaf in a time-stamp renewal (RFC 4998
// section 5.2): the hash of the timeStamp field (the token's DER) of the
// last ArchiveTimeStamp of its last chain, under that chain's hash
// algorithm h.
func TimeStampLeaf(record []byte) (leaf []byte, h crypto.Hash, err error) {
	r, err := Parse(record)
	if err != nil {
		return nil, 0, err
	}
	return timeStampLeaf(r)
}

// LastTimeStamp is the token (DER) of the record's newest archive
// time-stamp: the one a renewal of either kind covers, so its TSA
// certificate must still be valid, and its algorithms still in the
// policy's suite, when the renewal is made (docs/archive.md "Renew in
// time").
func (r *EvidenceRecord) LastTimeStamp() []byte {
	last := r.Chains[len(r.Chains)-1]
	return last[len(last)-1].TimeStamp
}

// RenewBy is the NotAfter of the TSA certificate the last token carries
// (the one its SignerInfo names), and that certificate: the next renewal
// must be made before it (docs/archive.md "Renew in time"). false when
// the token cannot be read or carries no such certificate. Nothing is
// verified: this is a date for the operator; the server judges the token
// when it renews.
func (r *EvidenceRecord) RenewBy() (time.Time, *x509.Certificate, bool) {
	tok, err := tsa.ReadToken(r.LastTimeStamp())
	if err != nil {
		return time.Time{}, nil, false
	}
	sd := tok.SignedData()
	if len(sd.SignerInfos) == 0 {
		return time.Time{}, nil, false
	}
	si := sd.SignerInfos[0]
	for _, c := range sd.Certificates {
		byName := si.Issuer != nil && si.SerialNumber != nil && c.SerialNumber.Cmp(si.SerialNumber) == 0 && bytes.Equal(c.RawIssuer, si.Issuer)
		byKeyID := si.Issuer == nil && len(si.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyId, si.SubjectKeyID)
		if byName || byKeyID {
			return c.NotAfter, c, true
		}
	}
	return time.Time{}, nil, false
}

// TimeStampLeaf is the package's TimeStampLeaf of a record already parsed.
func (r *EvidenceRecord) TimeStampLeaf() ([]byte, crypto.Hash, error) { return timeStampLeaf(r) }

// HashTreeLeaf is the package's HashTreeLeaf of a record already parsed.
func (r *EvidenceRecord) HashTreeLeaf(documentHash []byte, h crypto.Hash) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	return hashTreeLeaf(r, documentHash, h)
}

func timeStampLeaf(r *EvidenceRecord) ([]byte, crypto.Hash, error) {
	last := r.Chains[len(r.Chains)-1]
	if len(last) == MaxStamps {
		return nil, 0, fmt.Errorf("%w: the last chain has %d archive time-stamps already; renew the hash tree", ErrTooLarge, MaxStamps)
	}
	h, err := chainHash(last)
	if err != nil {
		return nil, 0, err
	}
	// RFC 4998 section 5.2: "the content of the timeStamp field of the
	// old Archive Timestamp has to be hashed" (the token's DER; its
	// reducedHashtree is covered by the old token's own signature).
	return digest(h, last[len(last)-1].TimeStamp), h, nil
}

// HashTreeLeaf is a record's leaf in a hash-tree renewal (RFC 4998
// section 5.2) under the new algorithm h: h(documentHash || h(DER of the
// record's ArchiveTimeStampSequence)), documentHash made with h.
func HashTreeLeaf(record, documentHash []byte, h crypto.Hash) ([]byte, error) {
	if err := checkHash(h); err != nil {
		return nil, err
	}
	r, err := Parse(record)
	if err != nil {
		return nil, err
	}
	return hashTreeLeaf(r, documentHash, h)
}

func hashTreeLeaf(r *EvidenceRecord, documentHash []byte, h crypto.Hash) ([]byte, error) {
	if len(documentHash) != h.Size() {
		return nil, fmt.Errorf("%w: document hash of %d bytes, %v makes %d", ErrHash, len(documentHash), h, h.Size())
	}
	if len(r.Chains) == MaxChains {
		return nil, fmt.Errorf("%w: %d archive time-stamp chains already", ErrTooLarge, MaxChains)
	}
	if !slices.Contains(r.DigestAlgorithms, h) && len(r.DigestAlgorithms) == MaxDigestAlgorithms {
		return nil, fmt.Errorf("%w: %d digest algorithms already", ErrTooLarge, MaxDigestAlgorithms)
	}
	seq, err := sequenceDER(r.Chains)
	if err != nil {
		return nil, err
	}
	return digest(h, documentHash, digest(h, seq)), nil
}

// ParseArchiveTimeStamp reads one DER ArchiveTimeStamp within Parse's
// bounds (what the Renew RPC answers per record).
func ParseArchiveTimeStamp(der []byte) (ArchiveTimeStamp, error) {
	if len(der) > MaxRecordBytes {
		return ArchiveTimeStamp{}, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(der), MaxRecordBytes)
	}
	s := cryptobyte.String(der)
	ats, err := parseATS(&s)
	if err != nil {
		return ArchiveTimeStamp{}, err
	}
	if !s.Empty() {
		return ArchiveTimeStamp{}, fmt.Errorf("%w: bytes after the archiveTimeStamp", ErrMalformed)
	}
	return ats, nil
}

// AppendRenewal adds the renewal ats (a DER ArchiveTimeStamp, made over the
// record's TimeStampLeaf or HashTreeLeaf) to the DER record: appended to
// its last chain (hashTree false), or as a new chain with its hash added
// to digestAlgorithms (hashTree true). VerifyRecord checks the result.
func AppendRenewal(record, ats []byte, hashTree bool) ([]byte, error) {
	r, err := Parse(record)
	if err != nil {
		return nil, err
	}
	a, err := ParseArchiveTimeStamp(ats)
	if err != nil {
		return nil, err
	}
	if err := appendRenewal(r, a, hashTree); err != nil {
		return nil, err
	}
	return r.Marshal()
}

func appendRenewal(r *EvidenceRecord, a ArchiveTimeStamp, hashTree bool) error {
	if !hashTree {
		last := len(r.Chains) - 1
		if len(r.Chains[last]) == MaxStamps {
			return fmt.Errorf("%w: the last chain has %d archive time-stamps already", ErrTooLarge, MaxStamps)
		}
		r.Chains[last] = append(r.Chains[last], a)
		return nil
	}
	if len(r.Chains) == MaxChains {
		return fmt.Errorf("%w: %d archive time-stamp chains already", ErrTooLarge, MaxChains)
	}
	h, err := chainHash([]ArchiveTimeStamp{a})
	if err != nil {
		return err
	}
	if !slices.Contains(r.DigestAlgorithms, h) {
		if len(r.DigestAlgorithms) == MaxDigestAlgorithms {
			return fmt.Errorf("%w: %d digest algorithms already", ErrTooLarge, MaxDigestAlgorithms)
		}
		r.DigestAlgorithms = append(r.DigestAlgorithms, h)
	}
	r.Chains = append(r.Chains, []ArchiveTimeStamp{a})
	return nil
}

// RenewTimeStamps is time-stamp renewal (RFC 4998 section 5.2) of a batch
// of records: the hash of each record's last time-stamp token is a leaf of
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
		leaf, ch, err := timeStampLeaf(r)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if i == 0 {
			h = ch
		} else if ch != h {
			return nil, fmt.Errorf("%w: record %d is under %v, record 0 under %v: renew them in separate batches", ErrRenewal, i, ch, h)
		}
		rs[i], leaves[i] = r, leaf
	}
	return renew(rs, leaves, h, false, stamp)
}

// UniqueLeaves returns each distinct leaf once, in first-seen order, and
// for each leaf the index of its copy: the records of one seal batch share
// their token, so a time-stamp renewal of the batch has one leaf, and the
// new tree is that one hash rather than n copies of it.
func UniqueLeaves(leaves [][]byte) (uniq [][]byte, index []int) {
	seen := make(map[string]int)
	index = make([]int, len(leaves))
	for i, l := range leaves {
		k, ok := seen[string(l)]
		if !ok {
			k = len(uniq)
			seen[string(l)] = k
			uniq = append(uniq, l)
		}
		index[i] = k
	}
	return uniq, index
}

func renew(rs []*EvidenceRecord, leaves [][]byte, h crypto.Hash, hashTree bool, stamp Stamper) ([][]byte, error) {
	leaves, index := UniqueLeaves(leaves)
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
		if err := appendRenewal(r, t.Stamp(index[i], token), hashTree); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
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
		r, err := Parse(der)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		leaf, err := hashTreeLeaf(r, documentHashes[i], h)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		rs[i], leaves[i] = r, leaf
	}
	return renew(rs, leaves, h, true, stamp)
}
