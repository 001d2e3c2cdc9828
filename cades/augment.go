package cades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// Stamper returns a DER RFC 3161 TimeStampToken over digest (made with
// h): pecet's own TSA (tsa.Authority.Token) or another.
type Stamper func(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, error)

// AugmentOptions say how far to raise a signature and what to judge it
// with.
type AugmentOptions struct {
	// Level is LevelT, LevelLT or LevelLTA; each includes the lower ones.
	Level Level
	// Stamp makes the signature and archive time-stamps.
	Stamp Stamper
	// Verify is what the signature is judged with before any time-stamp
	// is made or material embedded: the content (or its digest) of a
	// detached signature, the validator, the policy request (name,
	// caller's CRLs, context), the clock, the limits. Its At is ignored:
	// the judgement is now, for LT and LTA with revocation required.
	Verify VerifyOptions
	// Hash of the archive time-stamp and its hash index (zero: SHA-256).
	Hash crypto.Hash
	// StamperChain is the chain of the certificate the Stamper's tokens
	// will be signed with, that certificate first. When set, LT and LTA
	// judge it now under the policy with revocation required, as the
	// token will be judged, before asking for a signature time-stamp
	// (docs/archive.md "The order"); nil: judged only with the token.
	StamperChain []*x509.Certificate
}

// AugmentResult is the augmented signature.
type AugmentResult struct {
	Signature []byte
	// Level is the level the signature has now.
	Level Level
	// Verdict is the judgement the LT (or LTA renewal) step relied on;
	// zero for T.
	Verdict policy.Verdict
	// Added says what was added ("signature-time-stamp",
	// "certificate-values", …); empty when the signature already had the
	// level.
	Added []string
}

// Augment raises a CMS SignedData of one signer to the level asked
// (docs/archive.md "CAdES augmentation"). Only the signer's unsigned
// attributes change, and at an LTA renewal the certificates and crls
// fields gain the material of the previous archive time-stamp: the
// signature stays valid for any CMS verifier.
//
// Before the Stamper is called, the signature is verified now under the
// policy (for LT and LTA with revocation required, and StamperChain's
// certificate too) and refused (ErrNotValid) unless it is VALID: the TSA
// signs nothing for a signature that is then refused. A signature that gets its signature time-stamp
// here is judged again with it before LT embeds anything: only material
// that made a VALID verdict is embedded, exactly what it used. T on a
// signature that has a signature time-stamp changes nothing and judges
// nothing.
func Augment(ctx context.Context, der []byte, o AugmentOptions) (AugmentResult, error) {
	if o.Level.rank() < LevelT.rank() {
		return AugmentResult{}, fmt.Errorf("%w: level %q (T, LT or LTA)", ErrUnsupported, o.Level)
	}
	h := o.Hash
	if h == 0 {
		h = crypto.SHA256
	}
	if h != crypto.SHA256 && h != crypto.SHA384 && h != crypto.SHA512 {
		return AugmentResult{}, fmt.Errorf("%w: archive hash %v", ErrUnsupported, h)
	}
	sd, r, err := splitSignedData(der, o.Verify.Limits)
	if err != nil {
		return AugmentResult{}, err
	}
	if len(r.signers) != 1 {
		return AugmentResult{}, fmt.Errorf("%w: %d signers (pecet augments a signature of one signer)", ErrUnsupported, len(r.signers))
	}
	s := &r.signers[0]
	var res AugmentResult
	ch, ok := newContentHasher(sd, o.Verify.VerifyOptions).hash(h)
	if o.Level == LevelLTA && !ok {
		return res, ErrContentNeeded
	}

	hasATS := len(s.find(oidArchiveTSv3)) > 0
	needT := len(s.find(oidSigTimeStamp)) == 0
	// One more archive time-stamp than Verify reads would lose the
	// archive: refused before any time-stamp is made.
	if o.Level == LevelLTA {
		n := 0
		for _, a := range s.find(oidArchiveTSv3) {
			n += len(a.values)
		}
		if n >= MaxArchiveTimestamps {
			return res, tooLarge("%d archive time-stamps, another would exceed %d", n, MaxArchiveTimestamps)
		}
	}

	now := time.Now
	if o.Verify.Now != nil {
		now = o.Verify.Now
	}
	// judge verifies cur now under the policy; revocation is required
	// for LT and LTA (they embed what the verdict used), and at T it is
	// the policy's (a T signature carries no validation material).
	judge := func(cur []byte) (Result, error) {
		vo := o.Verify
		vo.At = now()
		if o.Level != LevelT {
			vo.Policy.Revocation = policy.RevocationRequire
		}
		rep, err := Verify(cur, vo)
		if err != nil {
			return rep, err
		}
		if rep.Verdict.Status != policy.Valid {
			var why []string
			for _, x := range rep.Verdict.Reasons {
				why = append(why, string(x.Code)+": "+x.Message)
			}
			return rep, fmt.Errorf("%w: %s (%s)", ErrNotValid, rep.Verdict.Status, strings.Join(why, "; "))
		}
		return rep, nil
	}

	// The signature is judged before the TSA is asked for anything
	// (docs/archive.md "The order"): a time-stamp is a signature of the
	// TSA's key, not to be made for a signature that is then refused. A
	// signature without a signature time-stamp is judged as it stands,
	// and for LT and LTA the certificate the token will be signed with;
	// with the time-stamp (made now) the verdict can differ only by the
	// token itself, judged after it below.
	cur, err := r.encode()
	if err != nil {
		return res, err
	}
	var rep Result
	if needT || o.Level != LevelT {
		if rep, err = judge(cur); err != nil {
			return res, err
		}
	}
	if needT && o.Level != LevelT {
		if err := judgeStamper(sd, s, o, now()); err != nil {
			return res, err
		}
	}

	// T: a signature-time-stamp over the signature value (EN 319 122-1 5.3).
	if needT {
		tok, err := o.Stamp(ctx, sum(crypto.SHA256, s.signatureValue()), crypto.SHA256)
		if err != nil {
			return res, err
		}
		s.attrs = append(s.attrs, newAttr(oidSigTimeStamp, tok))
		res.Added = append(res.Added, "signature-time-stamp")
		if cur, err = r.encode(); err != nil {
			return res, err
		}
	}
	res.Level = LevelT
	if o.Level == LevelT {
		res.Signature = cur
		return res, nil
	}
	if needT {
		// Judged again with the new token: its TSA's chain and
		// revocation status are part of what LT embeds.
		if rep, err = judge(cur); err != nil {
			return res, err
		}
	}
	res.Verdict = rep.Verdict
	m := material(rep.Verdict)
	if !hasATS {
		// LT: the certificates and revocation data the VALID verdict
		// used, merged with those already embedded.
		old := readRaw(s)
		m = Material{Certificates: union(old.Certificates, m.Certificates), CRLs: union(old.CRLs, m.CRLs), OCSP: union(old.OCSP, m.OCSP)}
		s.without(oidCertValues)
		s.without(oidRevocationValues)
		s.attrs = append(s.attrs, newAttr(oidCertValues, encodeCertValues(m.Certificates)), newAttr(oidRevocationValues, encodeRevocationValues(m)))
		res.Added = append(res.Added, "certificate-values", "revocation-values")
	} else {
		// An archive time-stamp covers those attributes: the material of
		// the newest archive time-stamp (its TSA's chain and CRLs) goes
		// into the certificates and crls fields, which earlier hash
		// indexes allow to grow (EN 319 122-1 5.5.3).
		old := readRaw(s)
		have := union(union(old.Certificates, r.certs), nil)
		for _, c := range m.Certificates {
			if !contains(have, c) {
				r.certs = append(r.certs, c)
			}
		}
		haveCRL := union(old.CRLs, r.crls)
		for _, c := range m.CRLs {
			if !contains(haveCRL, c) {
				r.crls = append(r.crls, c)
			}
		}
	}
	res.Level = LevelLT
	if o.Level == LevelLT {
		if hasATS {
			res.Level = LevelLTA
		}
		res.Signature, err = r.encode()
		return res, err
	}

	// LTA: archive-time-stamp-v3 with its ats-hash-index-v3 (5.5.2, 5.5.3).
	idx := hashIndexOf(r, s, h).encode()
	tok, err := o.Stamp(ctx, imprint(r, s, ch, h, idx), h)
	if err != nil {
		return res, err
	}
	_, tr, err := splitSignedData(tok, o.Verify.Limits)
	if err != nil || len(tr.signers) != 1 {
		return res, fmt.Errorf("%w: the time-stamp token is not a SignedData of one signer", ErrMalformed)
	}
	tr.signers[0].attrs = append(tr.signers[0].attrs, newAttr(oidATSHashIndexV3, idx))
	tok, err = tr.encode()
	if err != nil {
		return res, err
	}
	s.attrs = append(s.attrs, newAttr(oidArchiveTSv3, tok))
	res.Added = append(res.Added, "archive-time-stamp-v3")
	res.Level = LevelLTA
	res.Signature, err = r.encode()
	return res, err
}

// judgeStamper judges the certificate the signature time-stamp will be
// signed with as Verify will judge the token's (tsa.Token.Verify): for
// time-stamping, now, with revocation required, a key compromise counted
// at any time, with the signature's embedded CRLs. The token's own
// signature and imprint are judged only once it exists.
func judgeStamper(sd *signer.SignedData, s *rawSigner, o AugmentOptions, at time.Time) error {
	if len(o.StamperChain) == 0 || o.Verify.Validator == nil {
		return nil
	}
	req := o.Verify.Policy
	req.Leaf = o.StamperChain[0]
	req.Intermediates = append(slices.Clip(o.StamperChain[1:]), o.Verify.TSACertificates...)
	req.Purpose, req.At = policy.PurposeTimestamping, at
	req.Revocation, req.KeyCompromiseAnyTime = policy.RevocationRequire, true
	req.EmbeddedCRLs = append(slices.Clip(req.EmbeddedCRLs), readEmbedded(sd, s).crls...)
	v := o.Verify.Validator.Validate(req)
	if v.Status == policy.Valid {
		return nil
	}
	var why []string
	for _, x := range v.Reasons {
		why = append(why, string(x.Code)+": "+x.Message)
	}
	return fmt.Errorf("%w: the time-stamping authority's certificate is %s (%s)", ErrNotValid, v.Status, strings.Join(why, "; "))
}

// material is what a VALID verdict rests on: the chain and the other
// certificates, the CRLs and OCSP responses it used.
func material(v policy.Verdict) Material {
	var m Material
	for _, c := range v.Chain {
		m.Certificates = union(m.Certificates, [][]byte{c.Raw})
	}
	for _, u := range v.Used {
		switch u.Kind {
		case policy.ObjectCertificate:
			m.Certificates = union(m.Certificates, [][]byte{u.Raw})
		case policy.ObjectCRL:
			m.CRLs = union(m.CRLs, [][]byte{u.Raw})
		case policy.ObjectOCSPResponse:
			if b := basicOCSP(u.Raw); b != nil {
				m.OCSP = union(m.OCSP, [][]byte{b})
			}
		}
	}
	return m
}

// readRaw returns the material already in certificate-values and
// revocation-values (what does not parse is dropped: LT rewrites them).
func readRaw(s *rawSigner) Material {
	var m Material
	for _, a := range s.find(oidCertValues) {
		for _, v := range a.values {
			if c, err := ParseCertValues(v); err == nil {
				m.Certificates = union(m.Certificates, c)
			}
		}
	}
	for _, a := range s.find(oidRevocationValues) {
		for _, v := range a.values {
			if rv, err := ParseRevocationValues(v); err == nil {
				m.CRLs, m.OCSP = union(m.CRLs, rv.CRLs), union(m.OCSP, rv.OCSP)
			}
		}
	}
	return m
}

// basicOCSP takes the BasicOCSPResponse out of an OCSPResponse (RFC 6960
// 4.2.1); nil when it is not one.
func basicOCSP(der []byte) []byte {
	s := cryptobyte.String(der)
	var resp, rb, inner, oct cryptobyte.String
	var status int
	if !s.ReadASN1(&resp, cbasn1.SEQUENCE) || !resp.ReadASN1Enum(&status) || status != 0 ||
		!resp.ReadASN1(&rb, cbasn1.Tag(0).Constructed().ContextSpecific()) || !rb.ReadASN1(&inner, cbasn1.SEQUENCE) ||
		!inner.SkipASN1(cbasn1.OBJECT_IDENTIFIER) || !inner.ReadASN1(&oct, cbasn1.OCTET_STRING) {
		return nil
	}
	return oct
}

func contains(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

func union(a, b [][]byte) [][]byte {
	out := append([][]byte(nil), a...)
	for _, x := range b {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
