package cades

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// VerifyOptions are signer's, plus the TSA certificates known out of
// band (tokens without certificates).
type VerifyOptions struct {
	signer.VerifyOptions
	TSACertificates []*x509.Certificate
}

// Result is a verification with the level reached.
type Result struct {
	signer.Report
	// Level is the highest baseline level whose proofs verified: B for a
	// signature, T with a valid signature time-stamp, LT when the
	// validation material is embedded too, LTA when a valid chain of
	// archive time-stamps covers it at the validation time.
	Level Level
	// POETime is the proof of existence of the signature the chain was
	// judged at: the earliest valid signature time-stamp's time; zero
	// when there is none.
	POETime time.Time
	// ArchiveTime is the genTime of the oldest archive time-stamp of the
	// valid chain that starts at the latest one; zero without LTA.
	ArchiveTime time.Time
}

// archiveTS is one archive-time-stamp-v3 value.
type archiveTS struct {
	token *tsa.Token // parsed once, verified as read
	info  *tsa.TSTInfo
	index HashIndex
	raw   []byte // the ats-hash-index-v3 value as stored
}

// embedded is the validation material a signature carries.
type embedded struct {
	certs []*x509.Certificate
	crls  []*policy.CRL
	has   bool // certificate-values and revocation-values present and read
	// bad: values that did not parse (malformed, beyond MaxCertValues or
	// MaxRevocationValues), dropped: unsigned attributes are not
	// protected, so anyone could append them; only a verified archive
	// time-stamp whose hash index no longer matches makes it INVALID.
	bad []string
}

func readEmbedded(sd *signer.SignedData, s *rawSigner) embedded {
	var e embedded
	cv, rv := s.find(oidCertValues), s.find(oidRevocationValues)
	var rawCerts, rawCRLs [][]byte
	var goodCV, goodRV bool
	for _, a := range cv {
		for _, v := range a.values {
			c, err := ParseCertValues(v)
			if err != nil {
				e.bad = append(e.bad, err.Error())
				continue
			}
			goodCV = true
			rawCerts = append(rawCerts, c...)
		}
	}
	for _, a := range rv {
		for _, v := range a.values {
			m, err := ParseRevocationValues(v)
			if err != nil {
				e.bad = append(e.bad, err.Error())
				continue
			}
			goodRV = true
			rawCRLs = append(rawCRLs, m.CRLs...)
		}
	}
	e.has = goodCV && goodRV
	rawCRLs = append(rawCRLs, sd.CRLs...)
	for _, c := range rawCerts {
		// A certificate that does not parse builds no path; a change to it
		// shows in the archive time-stamp's hash index.
		if x, err := x509.ParseCertificate(c); err == nil {
			e.certs = append(e.certs, x)
		}
	}
	for _, c := range rawCRLs {
		if x, err := policy.ParseCRL(c); err == nil {
			e.crls = append(e.crls, x)
		}
	}
	return e
}

func readArchiveTimestamps(s *rawSigner) ([]archiveTS, []string, error) {
	var out []archiveTS
	var bad []string
	for _, a := range s.find(oidArchiveTSv3) {
		for _, tok := range a.values {
			if len(out)+len(bad) == MaxArchiveTimestamps {
				return nil, nil, tooLarge("more than %d archive time-stamps", MaxArchiveTimestamps)
			}
			t, err := tsa.ReadToken(tok)
			if err != nil {
				bad = append(bad, "an archive time-stamp is not a time-stamp token: "+err.Error())
				continue
			}
			var idx [][]byte
			for _, ua := range t.SignedData().SignerInfos[0].UnsignedAttrs {
				if ua.Type.Equal(oidATSHashIndexV3) {
					idx = append(idx, ua.Values...)
				}
			}
			if len(idx) != 1 {
				bad = append(bad, fmt.Sprintf("an archive time-stamp carries %d ats-hash-index-v3 values, EN 319 122-1 5.5.3 requires one", len(idx)))
				continue
			}
			x, err := ParseHashIndex(idx[0])
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			out = append(out, archiveTS{token: t, info: t.Info, index: x, raw: idx[0]})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].info.GenTime.Before(out[j].info.GenTime) })
	return out, bad, nil
}

// contentHasher gives the hash of the signed content for an archive
// time-stamp's imprint.
type contentHasher struct {
	content    []byte
	has        bool
	digest     []byte
	digestHash crypto.Hash
}

func newContentHasher(sd *signer.SignedData, o signer.VerifyOptions) contentHasher {
	switch {
	case !sd.Detached:
		return contentHasher{content: sd.Content, has: true}
	case o.Content != nil:
		return contentHasher{content: o.Content, has: true}
	case o.Digest != nil:
		h := o.DigestHash
		if h == 0 {
			h = crypto.SHA256
		}
		return contentHasher{digest: o.Digest, digestHash: h}
	}
	return contentHasher{}
}

func (c contentHasher) hash(h crypto.Hash) ([]byte, bool) {
	if c.has {
		return sum(h, c.content), true
	}
	if c.digest != nil && c.digestHash == h {
		return c.digest, true
	}
	return nil, false
}

// imprint is the message imprint of an archive-time-stamp-v3 (EN 319
// 122-1 5.5.3): the hash of eContentType, the content's hash, the
// signer's fields up to the signature, and the hash index.
func imprint(r *rawSignedData, s *rawSigner, contentHash []byte, h crypto.Hash, index []byte) []byte {
	parts := [][]byte{r.eContentType, contentHash}
	parts = append(parts, s.fields...)
	parts = append(parts, index)
	return sum(h, parts...)
}

// Verify verifies a CAdES signature at the validation time (opts.At, else
// now) with the material it embeds (docs/archive.md "CAdES
// augmentation"):
//
//  1. the archive time-stamps, latest first: each one's hash index must
//     name only elements still present and its imprint must match, else
//     INVALID when the token itself verifies VALID, and left aside
//     (ARCHIVE_TIMESTAMP_UNUSED, the chain broken) when it does not; the latest is judged at the validation time, each earlier
//     one at the genTime of the one that covers it; the unbroken run of
//     VALID ones proves the signature, its time-stamps and the embedded
//     material existed at the oldest one's genTime;
//  2. the signature time-stamps are judged at that time (without archive
//     time-stamps: at the validation time);
//  3. the signer's chain is judged, with the embedded certificates and
//     CRLs besides the caller's, at the signature time-stamp's time when
//     the archive time-stamps hold, else at the validation time; then a
//     certificate that expired after the signature time-stamp but before
//     the validation time is INDETERMINATE (OUT_OF_BOUNDS_NO_POE), not
//     INVALID.
func Verify(der []byte, opts VerifyOptions) (Result, error) {
	sd, r, err := splitSignedData(der, opts.Limits)
	if err != nil {
		return Result{}, err
	}
	if len(r.signers) != 1 {
		// Several signers: CAdES-T time-stamps are checked as before, at
		// the validation time; long-term material is read for one signer
		// only (docs/archive.md "CAdES augmentation").
		so := opts.VerifyOptions
		if so.TimestampVerifier == nil {
			so.TimestampVerifier = tsa.Verifier{Validator: opts.Validator, Policy: opts.Policy, TSACertificates: opts.TSACertificates, At: opts.At, Now: opts.Now}
		}
		rep, err := signer.VerifyReport(der, so)
		return Result{Report: rep, Level: baseLevel(rep.Verdict)}, err
	}
	s := &r.signers[0]
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	V := opts.At
	if V.IsZero() {
		V = now()
	}
	emb := readEmbedded(sd, s)
	preq := opts.Policy
	preq.EmbeddedCRLs = append(slices.Clip(preq.EmbeddedCRLs), emb.crls...)
	extra := append(slices.Clip(opts.ExtraCertificates), emb.certs...)
	tsaCerts := append(append(slices.Clip(opts.TSACertificates), emb.certs...), sd.Certificates...)

	var integrity []string
	atss, bad, err := readArchiveTimestamps(s)
	if err != nil {
		return Result{}, err
	}
	// An archive time-stamp pecet cannot read (no hash index, not a
	// token) proves nothing and is left aside, as if stripped; it does not
	// lower the verdict (a product may write a variant pecet does not know).
	// Nor does embedded material that does not parse: it is dropped.
	var archiveNotes []policy.Reason
	for _, b := range emb.bad {
		archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: b + ": dropped, not used as validation material"})
	}
	for _, b := range bad {
		archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: b + ": not used as a proof of existence"})
	}
	content := newContentHasher(sd, opts.VerifyOptions)
	var archiveTime time.Time
	var archiveUsed []policy.UsedObject
	judgeAt, chain := V, true
	present := map[crypto.Hash]HashIndex{} // each hash once: the attributes may be large
	for i := len(atss) - 1; i >= 0; i-- {
		a := atss[i]
		cur, ok := present[a.index.Hash]
		if !ok {
			cur = hashIndexOf(r, s, a.index.Hash)
			present[a.index.Hash] = cur
		}
		at := a.info.GenTime.UTC().Format(time.RFC3339)
		// A mismatch is judged only after the token's own signature:
		// unsigned attributes are not protected, so an archive time-stamp
		// anyone could append (an untrusted TSA's) proves nothing either way.
		var mismatch string
		if what := a.index.missing(cur); what != "" {
			mismatch = fmt.Sprintf("archive time-stamp of %s covers a %s that is no longer in the signature: it was changed or removed", at, what)
		}
		if mismatch == "" && a.info.Hash != hashFromOID(hashOID(a.info.Hash)) {
			// Only SHA-256, SHA-384, SHA-512 imprints (weak or unknown
			// hashes prove nothing).
			archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: "an archive time-stamp's imprint uses " + a.info.Hash.String() + ", not SHA-256, SHA-384 or SHA-512"})
			chain = false
			continue
		}
		var want []byte
		if mismatch == "" {
			ch, ok := content.hash(a.info.Hash)
			if !ok {
				archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: "an archive time-stamp cannot be checked without the content (or its digest with " + a.info.Hash.String() + ")"})
				chain = false
				continue
			}
			want = imprint(r, s, ch, a.info.Hash, a.raw)
			if !bytes.Equal(want, a.info.Digest) {
				mismatch = fmt.Sprintf("archive time-stamp of %s: its imprint does not match the signature it covers", at)
			}
		}
		if !chain && mismatch == "" {
			continue
		}
		areq := preq
		if judgeAt != V {
			areq.Now = judgeAt // proven by the newer archive time-stamp
		}
		vo := tsa.VerifyOptions{Validator: opts.Validator, Policy: areq, TSACertificates: tsaCerts, Digest: want, DigestHash: a.info.Hash, At: judgeAt, Now: now}
		if mismatch != "" {
			vo.Digest, vo.NoImprint = nil, true // is the token itself sound?
		}
		tv, err := a.token.Verify(vo)
		if mismatch != "" {
			chain = false
			if err == nil && tv.Status == policy.Valid {
				integrity = append(integrity, mismatch)
			} else {
				archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: mismatch + "; the archive time-stamp itself does not verify: not used as a proof of existence"})
			}
			continue
		}
		if err != nil {
			archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: "archive time-stamp of " + at + ": " + err.Error() + ": not used as a proof of existence"})
			chain = false
			continue
		}
		archiveUsed = append(archiveUsed, policy.UsedObject{Kind: policy.ObjectTimestamp, Raw: a.token.DER, Time: a.info.GenTime})
		for _, c := range tv.Chain {
			archiveUsed = append(archiveUsed, policy.UsedObject{Kind: policy.ObjectCertificate, Raw: c.Raw})
		}
		archiveUsed = append(archiveUsed, tv.Used...)
		if tv.Status != policy.Valid {
			for _, x := range tv.Reasons {
				archiveNotes = append(archiveNotes, policy.Reason{Code: CodeArchiveTimestampUnused, Message: "archive time-stamp of " + at + ": " + string(x.Code) + ": " + x.Message})
			}
			chain = false
			continue
		}
		archiveTime, judgeAt = a.info.GenTime, a.info.GenTime
	}

	// The signature time-stamps, at the archive proof's time when there is
	// one, else at the caller's validation time.
	// With archive time-stamps, the validation is the one that could be
	// made at the oldest one's time: revocation data current then counts
	// (policy.Request.Now).
	tsAt := opts.At
	if !archiveTime.IsZero() {
		tsAt = archiveTime
		preq.Now = archiveTime
	}
	// Each token is verified once here; signer's verification below reads
	// the same results (docs/security.md "Work budget per verification").
	tv := shareTimestamps(tsa.Verifier{Validator: opts.Validator, Policy: preq, TSACertificates: tsaCerts, At: tsAt, Now: now})
	var tst time.Time
	si := &sd.SignerInfos[0]
	for _, a := range si.UnsignedAttrs {
		if !a.Type.Equal(oidSigTimeStamp) {
			continue
		}
		for _, tok := range a.Values {
			at, v, err := tv.VerifyTimestampWithCertificates(tok, si.Signature, sd.Certificates)
			if err == nil && v.Status == policy.Valid && (tst.IsZero() || at.Before(tst)) {
				tst = at
			}
		}
	}

	so := opts.VerifyOptions
	so.Policy = preq
	so.ExtraCertificates = extra
	so.TimestampVerifier = tv
	if !archiveTime.IsZero() && !tst.IsZero() {
		so.At = tst // the archive time-stamps prove the material existed then
	}
	if so.Validator != nil {
		so.Validator = poeValidator{inner: so.Validator, poe: tst}
	}
	rep, err := signer.VerifyReport(der, so)
	if err != nil {
		return Result{}, err
	}
	v := &rep.Verdict
	for _, u := range archiveUsed {
		v.Use(u)
	}
	for _, msg := range integrity {
		v.Add(policy.Invalid, CodeArchiveTimestamp, msg)
	}
	if v.Status != policy.Valid {
		v.Reasons = append(v.Reasons, archiveNotes...)
	}
	res := Result{Report: rep, Level: baseLevel(*v)}
	if !v.TimestampTime.IsZero() && res.Level == LevelB {
		res.Level = LevelT
		res.POETime = v.TimestampTime
		if emb.has {
			res.Level = LevelLT
		}
		if res.Level == LevelLT && !archiveTime.IsZero() {
			res.Level, res.ArchiveTime = LevelLTA, archiveTime
		}
	}
	return res, nil
}

// baseLevel: B when the signature itself is sound (not INVALID).
func baseLevel(v policy.Verdict) Level {
	if v.Status == policy.Invalid {
		return LevelNone
	}
	return LevelB
}

// poeValidator reads an expiry of the signer's chain at the validation
// time as ETSI EN 319 102-1 does when a signature time-stamp proves the
// signature existed before it: INDETERMINATE (OUT_OF_BOUNDS_NO_POE), not
// INVALID; only archive time-stamps over the validation material make it
// VALID again (Verify judges the chain at the proof's time then).
type poeValidator struct {
	inner policy.Validator
	poe   time.Time
}

func (p poeValidator) Validate(r policy.Request) policy.Verdict {
	v := p.inner.Validate(r)
	if v.Status != policy.Invalid || p.poe.IsZero() || r.Leaf == nil || !p.poe.Before(r.Leaf.NotAfter) {
		return v
	}
	expired := false
	for _, x := range v.Reasons {
		switch x.Code {
		case policy.CodeExpired:
			expired = true
		case policy.CodeRevocationUnknown:
		default:
			return v
		}
	}
	if !expired {
		return v
	}
	out := v
	out.Status, out.Reasons = policy.Valid, nil
	for _, x := range v.Reasons {
		if x.Code == policy.CodeExpired {
			out.Add(policy.Indeterminate, CodeOutOfBoundsNoPOE, x.Message+" before the validation time; the signature time-stamp proves the signature existed before, but nothing proves the validation material did: augment to LTA before expiry")
		} else {
			out.Reasons = append(out.Reasons, x)
		}
	}
	return out
}

// JudgeSignatureAlgorithm passes the inner validator's algorithm judge
// through (policy.AlgorithmJudge).
func (p poeValidator) JudgeSignatureAlgorithm(name string, h crypto.Hash, alg x509.SignatureAlgorithm, key crypto.PublicKey, at time.Time) (policy.Verdict, bool) {
	if j, ok := p.inner.(policy.AlgorithmJudge); ok {
		return j.JudgeSignatureAlgorithm(name, h, alg, key, at)
	}
	return policy.Verdict{}, false
}
