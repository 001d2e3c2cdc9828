package ers

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pecet-hsm/pecet/tsa"
)

// TokenJudge checks a time-stamp token's signature and its TSA's chain as
// they stand at time at (zero: now) and returns its content; the imprint is
// checked by VerifyRecord. The policy stays with the caller: TSAJudge makes
// one from tsa.VerifyOptions.
type TokenJudge func(token []byte, at time.Time) (*tsa.TSTInfo, error)

// Judge is a TokenJudge of tokens Record.Verify has already read
// (tsa.ReadToken) for the structure checks: it verifies them as read
// (tsa.Token.Verify), so each is parsed once.
type Judge func(token *tsa.Token, at time.Time) (*tsa.TSTInfo, error)

// TSAJudge judges tokens with tsa.Verify under opts, at the time it is
// given (opts.At is replaced); the imprint options are ignored. Only a
// VALID verdict passes.
func TSAJudge(opts tsa.VerifyOptions) TokenJudge {
	opts.Data, opts.Digest, opts.DigestHash, opts.NoImprint = nil, nil, 0, true
	return func(token []byte, at time.Time) (*tsa.TSTInfo, error) {
		o := opts
		o.At = at
		info, v, err := tsa.Verify(token, o)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrToken, err)
		}
		if v.Status != "VALID" {
			return nil, fmt.Errorf("%w: verdict %s", ErrToken, v.Status)
		}
		return info, nil
	}
}

// Result is what a verified record proves.
type Result struct {
	// Existed is the earliest proven existence time: the genTime of the
	// record's first archive time-stamp.
	Existed time.Time
	// Stamps lists the genTimes of all archive time-stamps, in order.
	Stamps []time.Time
	// Hashes are the chains' hash algorithms, in order.
	Hashes []crypto.Hash
}

// ChainHashes are the hash algorithms of the record's chains, in order:
// VerifyRecord needs the document's hash under each.
func (r *EvidenceRecord) ChainHashes() ([]crypto.Hash, error) {
	var out []crypto.Hash
	for k, c := range r.Chains {
		h, err := chainHash(c)
		if err != nil {
			return nil, fmt.Errorf("chain %d: %w", k, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// step is one archive time-stamp of a record in chronological order.
type step struct {
	ats   ArchiveTimeStamp
	h     crypto.Hash
	leaf  []byte
	first bool // first of its chain: its leaf is the document's
	info  *tsa.TSTInfo
	tok   *tsa.Token // as read for the structure checks, judged as read
	chain int
}

// VerifyRecord checks that the DER record proves the existence of the
// document whose hashes (one per algorithm the record's chains use) are
// documentHashes, following every renewal (RFC 4998 section 5.3):
//
//   - the first archive time-stamp of the first chain covers the document
//     hash; each later one of a chain covers the hash of the timeStamp
//     field (the token's DER) of the one before (time-stamp renewal, same
//     hash algorithm); the first of each
//     later chain covers h(document hash || h(DER of the chains before))
//     under that chain's algorithm (hash-tree renewal);
//   - each time-stamp's imprint is the root its reduced tree leads to, and
//     the genTimes do not go back;
//   - judge accepts each token at the genTime of the next one (which
//     proves the token existed while it was still good), the last at the
//     validation time at (zero: now).
//
// Structure is checked before any token is judged, so a modified record
// or document fails with its precise sentinel: ErrNotCovered (the
// document), ErrRootMismatch (a tree), ErrRenewal (a renewal or the
// order), ErrHash (algorithms), ErrToken (the judge refused a token).
func VerifyRecord(der []byte, documentHashes map[crypto.Hash][]byte, judge TokenJudge, at time.Time) (Result, error) {
	r, err := Parse(der)
	if err != nil {
		return Result{}, err
	}
	return r.Verify(documentHashes, func(t *tsa.Token, at time.Time) (*tsa.TSTInfo, error) { return judge(t.DER, at) }, at)
}

// Verify is VerifyRecord of a record already parsed, with a judge of the
// tokens as read for the structure checks: each token is parsed once. The
// judge is asked token after token and the first error stops the
// verification, so a judge that checks the caller's work budget stops a
// record of many renewals when the budget is spent, not after judging
// them all.
func (r *EvidenceRecord) Verify(documentHashes map[crypto.Hash][]byte, judge Judge, at time.Time) (Result, error) {
	var res Result
	var steps []step
	for k, chain := range r.Chains {
		h, err := chainHash(chain)
		if err != nil {
			return Result{}, fmt.Errorf("chain %d: %w", k, err)
		}
		if !slices.Contains(r.DigestAlgorithms, h) {
			return Result{}, fmt.Errorf("%w: chain %d uses %v, which digestAlgorithms does not list", ErrHash, k, h)
		}
		doc, ok := documentHashes[h]
		if !ok {
			return Result{}, fmt.Errorf("%w: chain %d needs the document's %v hash", ErrHash, k, h)
		}
		if len(doc) != h.Size() {
			return Result{}, fmt.Errorf("%w: document hash of %d bytes for %v", ErrHash, len(doc), h)
		}
		res.Hashes = append(res.Hashes, h)
		leaf := doc
		if k > 0 {
			seq, err := sequenceDER(r.Chains[:k])
			if err != nil {
				return Result{}, err
			}
			leaf = digest(h, doc, digest(h, seq))
		}
		for j, ats := range chain {
			if j > 0 {
				leaf = digest(h, chain[j-1].TimeStamp)
			}
			steps = append(steps, step{ats: ats, h: h, leaf: leaf, first: j == 0, chain: k})
		}
	}
	for i := range steps {
		s := &steps[i]
		tok, err := tsa.ReadToken(s.ats.TimeStamp)
		if err != nil {
			return Result{}, fmt.Errorf("%w: chain %d: time-stamp: %w", ErrToken, s.chain, err)
		}
		s.tok = tok
		info := tok.Info
		if err := checkStep(*s, info); err != nil {
			return Result{}, fmt.Errorf("chain %d: %w", s.chain, err)
		}
		if i > 0 && info.GenTime.Before(steps[i-1].info.GenTime) {
			return Result{}, fmt.Errorf("%w: archive time-stamp %d (%v) is older than the one it renews (%v)", ErrRenewal, i, info.GenTime, steps[i-1].info.GenTime)
		}
		s.info = info
	}
	for i, s := range steps {
		when := at
		if i+1 < len(steps) {
			when = steps[i+1].info.GenTime
		}
		info, err := judge(s.tok, when)
		if err != nil {
			if errors.Is(err, ErrToken) {
				return Result{}, fmt.Errorf("archive time-stamp %d: %w", i, err)
			}
			return Result{}, fmt.Errorf("%w: archive time-stamp %d: %w", ErrToken, i, err)
		}
		if info == nil || !bytes.Equal(info.Digest, s.info.Digest) || !info.GenTime.Equal(s.info.GenTime) {
			return Result{}, fmt.Errorf("%w: archive time-stamp %d: the judge returned another content", ErrToken, i)
		}
		res.Stamps = append(res.Stamps, s.info.GenTime)
	}
	res.Existed = res.Stamps[0]
	return res, nil
}

// checkStep recomputes one archive time-stamp's tree from its leaf to the
// root and compares it with the token's imprint.
func checkStep(s step, info *tsa.TSTInfo) error {
	h := s.ats.Hash
	if h == 0 {
		h = info.Hash
	}
	if h != s.h {
		return fmt.Errorf("%w: an archive time-stamp under %v in a chain under %v", ErrRenewal, h, s.h)
	}
	if info.Hash != h {
		return fmt.Errorf("%w: the token's hash %v is not the record's %v", ErrHash, info.Hash, h)
	}
	// A leaf not found: the document (first of a chain) or the renewed
	// time-stamp (later ones) is not what this time-stamp covers.
	notCovered := ErrNotCovered
	if !s.first {
		notCovered = ErrRenewal
	}
	cur := s.leaf
	for i, level := range s.ats.ReducedHashtree {
		for _, v := range level {
			if len(v) != h.Size() {
				return fmt.Errorf("%w: hash value of %d bytes in level %d", ErrMalformed, len(v), i)
			}
		}
		if i == 0 {
			// The first list holds the leaf itself.
			if !slices.ContainsFunc(level, func(v []byte) bool { return bytes.Equal(v, cur) }) {
				return notCovered
			}
			cur = nodeHash(h, level)
			continue
		}
		cur = nodeHash(h, append(slices.Clone(level), cur))
	}
	if !bytes.Equal(cur, info.Digest) {
		if len(s.ats.ReducedHashtree) == 0 {
			return notCovered
		}
		return ErrRootMismatch
	}
	return nil
}

// Verify checks a record for one document hash (its algorithm told by its
// length: SHA-256, -384 or -512) with a verifier that judges tokens now;
// VerifyRecord is the general form (renewals under several algorithms, the
// time each token is judged at). Returns the earliest proven existence
// time.
func Verify(der, documentHash []byte, verifyToken TokenVerifier) (time.Time, error) {
	docs := map[crypto.Hash][]byte{}
	for _, h := range hashes {
		if len(documentHash) == h.Size() {
			docs[h] = documentHash
		}
	}
	res, err := VerifyRecord(der, docs, func(token []byte, _ time.Time) (*tsa.TSTInfo, error) { return verifyToken(token) }, time.Time{})
	if err != nil {
		return time.Time{}, err
	}
	return res.Existed, nil
}
