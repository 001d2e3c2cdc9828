package ers

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/tsa"
)

// Bounds of Parse: an evidence record comes from an archive that may be
// hostile or corrupt, so nothing is allocated beyond these.
const (
	// MaxRecordBytes bounds a whole record (the time-stamp token with its
	// certificates is most of it).
	MaxRecordBytes = 256 << 10
	// MaxDigestAlgorithms bounds digestAlgorithms.
	MaxDigestAlgorithms = 8
	// MaxChains bounds the ArchiveTimeStampChains (renewals of the tree).
	MaxChains = 16
	// MaxStamps bounds the ArchiveTimeStamps of one chain (renewals of the
	// time-stamp).
	MaxStamps = 64
	// MaxLevels bounds the PartialHashtrees of one reduced tree: a binary
	// tree of 2^64 documents has 64 levels.
	MaxLevels = 64
	// MaxHashesPerLevel bounds one PartialHashtree (2 in the trees Seal
	// makes; other implementations may group more).
	MaxHashesPerLevel = 32
	// MaxHashBytes bounds one hash value (SHA-512 is 64).
	MaxHashBytes = 64
)

// Errors of Seal, Parse and Verify, for errors.Is.
var (
	ErrNoDocuments  = errors.New("ers: no document hashes")
	ErrHash         = errors.New("ers: hash algorithm not supported or hash of the wrong length")
	ErrMalformed    = errors.New("ers: malformed evidence record")
	ErrTooLarge     = errors.New("ers: evidence record exceeds a bound")
	ErrUnsupported  = errors.New("ers: evidence record feature not supported")
	ErrNotCovered   = errors.New("ers: document hash is not covered by the record")
	ErrRootMismatch = errors.New("ers: time-stamp does not cover the hash tree root")
	ErrToken        = errors.New("ers: time-stamp token rejected")
	// ErrRenewal: a renewal does not cover what it renews (a time-stamp
	// renewal not over the previous ArchiveTimeStamp, a chain whose hash
	// algorithm changes, time-stamps out of chronological order), or the
	// records given to Renew are not of one kind.
	ErrRenewal = errors.New("ers: renewal does not cover the archive time-stamp before it")
)

// ArchiveTimeStamp is one ArchiveTimeStamp of RFC 4998 section 4.1.
type ArchiveTimeStamp struct {
	// Hash is digestAlgorithm (0 when the field is absent: the token's
	// hash algorithm applies).
	Hash crypto.Hash
	// ReducedHashtree is the list of PartialHashtrees from the leaf to the
	// root; nil when absent (the token covers the document hash itself).
	ReducedHashtree [][][]byte
	// TimeStamp is the DER ContentInfo of the RFC 3161 token.
	TimeStamp []byte
	// Raw is the DER of the whole ArchiveTimeStamp as parsed (nil for one
	// built here): a time-stamp renewal covers these exact bytes, which
	// another implementation may have encoded differently from Marshal
	// (absent algorithm parameters).
	Raw []byte
}

// EvidenceRecord is an EvidenceRecord of RFC 4998 section 3.
type EvidenceRecord struct {
	Version          int
	DigestAlgorithms []crypto.Hash
	// Chains is archiveTimeStampSequence.
	Chains [][]ArchiveTimeStamp
}

// TokenVerifier checks a time-stamp token's signature and its TSA's chain
// and returns its content; the imprint is checked by Verify. TSAVerifier
// makes one from tsa.VerifyOptions.
type TokenVerifier func(token []byte) (*tsa.TSTInfo, error)

// TSAVerifier verifies tokens with tsa.Verify under opts (the imprint
// options are ignored: Verify checks the imprint against the tree root).
// Only a VALID verdict passes.
func TSAVerifier(opts tsa.VerifyOptions) TokenVerifier {
	opts.Data, opts.Digest, opts.DigestHash, opts.NoImprint = nil, nil, 0, true
	return func(token []byte) (*tsa.TSTInfo, error) {
		info, v, err := tsa.Verify(token, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrToken, err)
		}
		if v.Status != "VALID" {
			return nil, fmt.Errorf("%w: verdict %s", ErrToken, v.Status)
		}
		return info, nil
	}
}

// hashes are the digest algorithms of records: SHA-2 of at least 256 bits,
// the ones pecet's TSA time-stamps (docs/archive.md).
var hashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

func checkHash(h crypto.Hash) error {
	if _, ok := tsa.HashOID(h); !ok || !slices.Contains(hashes, h) || !h.Available() {
		return fmt.Errorf("%w: %v", ErrHash, h)
	}
	return nil
}

// nodeHash is the hash of a node: its children's hashes sorted in binary
// ascending order and concatenated (RFC 4998 section 4.2 step 3).
func nodeHash(h crypto.Hash, children [][]byte) []byte {
	s := slices.Clone(children)
	slices.SortFunc(s, bytes.Compare)
	d := h.New()
	for _, c := range s {
		d.Write(c)
	}
	return d.Sum(nil)
}

// Seal builds one hash tree over hashes (each made with h), has its root
// time-stamped once by stamp (which returns the DER TimeStampToken, a
// ContentInfo), and returns one DER EvidenceRecord per document, in the
// order of hashes. A single document gets no reduced tree: the token
// covers its hash directly (RFC 4998 section 4.2).
//
// The tree is binary; a node left without a sibling at a level is carried
// up unchanged, so every PartialHashtree of a record holds two hashes.
func Seal(hashes [][]byte, h crypto.Hash, stamp func(rootDigest []byte) (token []byte, err error)) ([][]byte, error) {
	t, err := NewTree(hashes, h)
	if err != nil {
		return nil, err
	}
	token, err := stamp(t.Root())
	if err != nil {
		return nil, fmt.Errorf("ers: time-stamping the root: %w", err)
	}
	out := make([][]byte, len(hashes))
	for i := range hashes {
		if out[i], err = t.Record(i, token); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func addAlg(b *cryptobyte.Builder, tag cbasn1.Tag, h crypto.Hash) {
	oid, _ := tsa.HashOID(h)
	b.AddASN1(tag, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1NULL()
	})
}

// Marshal encodes the record as DER (the ERS module has IMPLICIT tags).
// An ArchiveTimeStamp with Raw is written as those bytes.
func (r *EvidenceRecord) Marshal() ([]byte, error) {
	for _, h := range r.DigestAlgorithms {
		if err := checkHash(h); err != nil {
			return nil, err
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(r.Version))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, h := range r.DigestAlgorithms {
				addAlg(b, cbasn1.SEQUENCE, h)
			}
		})
		addSequence(b, r.Chains)
	})
	return b.Bytes()
}

// addSequence writes an ArchiveTimeStampSequence.
func addSequence(b *cryptobyte.Builder, chains [][]ArchiveTimeStamp) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, chain := range chains {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, ats := range chain {
					addATS(b, ats)
				}
			})
		}
	})
}

// addATS writes one ArchiveTimeStamp: its Raw bytes when parsed.
func addATS(b *cryptobyte.Builder, ats ArchiveTimeStamp) {
	if ats.Raw != nil {
		b.AddBytes(ats.Raw)
		return
	}
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if ats.Hash != 0 {
			addAlg(b, cbasn1.Tag(0).ContextSpecific().Constructed(), ats.Hash)
		}
		if ats.ReducedHashtree != nil {
			b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				for _, level := range ats.ReducedHashtree {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, v := range level {
							b.AddASN1OctetString(v)
						}
					})
				}
			})
		}
		b.AddBytes(ats.TimeStamp)
	})
}

// atsDER is the DER of one ArchiveTimeStamp (what the Renew RPC answers
// per record). A time-stamp renewal hashes only its timeStamp field.
func atsDER(ats ArchiveTimeStamp) ([]byte, error) {
	var b cryptobyte.Builder
	addATS(&b, ats)
	return b.Bytes()
}

// sequenceDER is the DER of an ArchiveTimeStampSequence of chains, what a
// hash-tree renewal hashes (RFC 4998 section 5.2 step 3).
func sequenceDER(chains [][]ArchiveTimeStamp) ([]byte, error) {
	var b cryptobyte.Builder
	addSequence(&b, chains)
	return b.Bytes()
}

var (
	tagDigestAlg = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagCryptoInf = cbasn1.Tag(0).ContextSpecific().Constructed()
	tagEncInfo   = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagAttrs     = cbasn1.Tag(1).ContextSpecific().Constructed()
	tagTree      = cbasn1.Tag(2).ContextSpecific().Constructed()
)

func hashFromOID(oid asn1.ObjectIdentifier) crypto.Hash {
	for _, h := range hashes {
		if o, ok := tsa.HashOID(h); ok && o.Equal(oid) {
			return h
		}
	}
	return 0
}

// readAlg reads the contents of an AlgorithmIdentifier of a hash: the OID
// and absent or NULL parameters.
func readAlg(s cryptobyte.String) (crypto.Hash, error) {
	var oid asn1.ObjectIdentifier
	if !s.ReadASN1ObjectIdentifier(&oid) {
		return 0, fmt.Errorf("%w: algorithm identifier", ErrMalformed)
	}
	if !s.Empty() {
		var null cryptobyte.String
		if !s.ReadASN1(&null, cbasn1.NULL) || !null.Empty() || !s.Empty() {
			return 0, fmt.Errorf("%w: algorithm parameters", ErrMalformed)
		}
	}
	h := hashFromOID(oid)
	if h == 0 || checkHash(h) != nil {
		return 0, fmt.Errorf("%w: digest algorithm %v", ErrHash, oid)
	}
	return h, nil
}

// Parse reads a DER EvidenceRecord within the Max* bounds. cryptoInfos,
// encryptionInfo and attributes are refused (ErrUnsupported).
func Parse(der []byte) (*EvidenceRecord, error) {
	if len(der) > MaxRecordBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(der), MaxRecordBytes)
	}
	in := cryptobyte.String(der)
	var seq, algs, chains cryptobyte.String
	var version int64
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, fmt.Errorf("%w: not one DER SEQUENCE", ErrMalformed)
	}
	if !seq.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) || version != 1 {
		return nil, fmt.Errorf("%w: version is not 1", ErrMalformed)
	}
	r := &EvidenceRecord{Version: 1}
	if !seq.ReadASN1(&algs, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%w: digestAlgorithms", ErrMalformed)
	}
	for !algs.Empty() {
		if len(r.DigestAlgorithms) == MaxDigestAlgorithms {
			return nil, fmt.Errorf("%w: more than %d digest algorithms", ErrTooLarge, MaxDigestAlgorithms)
		}
		var a cryptobyte.String
		if !algs.ReadASN1(&a, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("%w: digestAlgorithms", ErrMalformed)
		}
		h, err := readAlg(a)
		if err != nil {
			return nil, err
		}
		r.DigestAlgorithms = append(r.DigestAlgorithms, h)
	}
	if len(r.DigestAlgorithms) == 0 {
		return nil, fmt.Errorf("%w: no digest algorithm", ErrMalformed)
	}
	if seq.PeekASN1Tag(tagCryptoInf) || seq.PeekASN1Tag(tagEncInfo) {
		return nil, fmt.Errorf("%w: cryptoInfos or encryptionInfo", ErrUnsupported)
	}
	if !seq.ReadASN1(&chains, cbasn1.SEQUENCE) || !seq.Empty() {
		return nil, fmt.Errorf("%w: archiveTimeStampSequence", ErrMalformed)
	}
	for !chains.Empty() {
		if len(r.Chains) == MaxChains {
			return nil, fmt.Errorf("%w: more than %d archive time-stamp chains", ErrTooLarge, MaxChains)
		}
		var c cryptobyte.String
		if !chains.ReadASN1(&c, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("%w: archiveTimeStampChain", ErrMalformed)
		}
		var chain []ArchiveTimeStamp
		for !c.Empty() {
			if len(chain) == MaxStamps {
				return nil, fmt.Errorf("%w: more than %d archive time-stamps in a chain", ErrTooLarge, MaxStamps)
			}
			ats, err := parseATS(&c)
			if err != nil {
				return nil, err
			}
			chain = append(chain, ats)
		}
		if len(chain) == 0 {
			return nil, fmt.Errorf("%w: empty archiveTimeStampChain", ErrMalformed)
		}
		r.Chains = append(r.Chains, chain)
	}
	if len(r.Chains) == 0 {
		return nil, fmt.Errorf("%w: empty archiveTimeStampSequence", ErrMalformed)
	}
	return r, nil
}

func parseATS(c *cryptobyte.String) (ArchiveTimeStamp, error) {
	var ats ArchiveTimeStamp
	var raw, s cryptobyte.String
	if !c.ReadASN1Element(&raw, cbasn1.SEQUENCE) {
		return ats, fmt.Errorf("%w: archiveTimeStamp", ErrMalformed)
	}
	ats.Raw = slices.Clone(raw)
	if !raw.ReadASN1(&s, cbasn1.SEQUENCE) {
		return ats, fmt.Errorf("%w: archiveTimeStamp", ErrMalformed)
	}
	if s.PeekASN1Tag(tagDigestAlg) {
		var a cryptobyte.String
		s.ReadASN1(&a, tagDigestAlg)
		h, err := readAlg(a)
		if err != nil {
			return ats, err
		}
		ats.Hash = h
	}
	if s.PeekASN1Tag(tagAttrs) {
		return ats, fmt.Errorf("%w: archive time-stamp attributes", ErrUnsupported)
	}
	if s.PeekASN1Tag(tagTree) {
		var t cryptobyte.String
		s.ReadASN1(&t, tagTree)
		ats.ReducedHashtree = [][][]byte{}
		for !t.Empty() {
			if len(ats.ReducedHashtree) == MaxLevels {
				return ats, fmt.Errorf("%w: more than %d levels in a reduced hash tree", ErrTooLarge, MaxLevels)
			}
			var p cryptobyte.String
			if !t.ReadASN1(&p, cbasn1.SEQUENCE) {
				return ats, fmt.Errorf("%w: partialHashtree", ErrMalformed)
			}
			var level [][]byte
			for !p.Empty() {
				if len(level) == MaxHashesPerLevel {
					return ats, fmt.Errorf("%w: more than %d hashes in a partial hash tree", ErrTooLarge, MaxHashesPerLevel)
				}
				var v cryptobyte.String
				if !p.ReadASN1(&v, cbasn1.OCTET_STRING) {
					return ats, fmt.Errorf("%w: hash value", ErrMalformed)
				}
				if len(v) == 0 || len(v) > MaxHashBytes {
					return ats, fmt.Errorf("%w: hash value of %d bytes", ErrMalformed, len(v))
				}
				level = append(level, slices.Clone(v))
			}
			ats.ReducedHashtree = append(ats.ReducedHashtree, level)
		}
	}
	var tok cryptobyte.String
	if !s.ReadASN1Element(&tok, cbasn1.SEQUENCE) || !s.Empty() {
		return ats, fmt.Errorf("%w: timeStamp", ErrMalformed)
	}
	ats.TimeStamp = slices.Clone(tok)
	return ats, nil
}
