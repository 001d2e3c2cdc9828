package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// ErrMalformedCRL is returned for bytes that are not a CRL.
var ErrMalformedCRL = errors.New("policy: malformed CRL")

// MaxCRLBytes bounds a CRL read from a file or the network. The largest
// Czech qualified CA CRLs are a few MB.
const MaxCRLBytes = 32 << 20

// CRL reason codes used here (RFC 5280 5.3.1).
const (
	reasonKeyCompromise   = 1
	reasonCertificateHold = 6
	reasonRemoveFromCRL   = 8
	allReasons            = 0x1fe // bits 1..8 of ReasonFlags
)

// CRL is a parsed certificate revocation list with what the RFC 5280 6.3
// checks need.
type CRL struct {
	RL         *x509.RevocationList
	issuerKey  string
	issuerDN   dn
	idp        *distributionPoint
	idpRaw     []byte
	delta      bool
	baseNumber *big.Int
	// entries by issuer name key and serial (indirect CRLs carry
	// entries of several issuers, RFC 5280 5.3.3).
	entries map[string]crlEntry
	// problem makes the CRL unusable (unknown critical extension).
	problem string
	// raw is the DER as given, named in validation reports.
	raw []byte
}

type crlEntry struct {
	when   time.Time
	reason int
	// compromised is the entry's invalidityDate (RFC 5280 5.3.2), zero
	// when it has none.
	compromised time.Time
}

// ParseCRL parses a DER (or PEM) CRL.
func ParseCRL(data []byte) (*CRL, error) {
	if len(data) > MaxCRLBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedCRL, MaxCRLBytes)
	}
	der := pemOrDER(data, "X509 CRL")
	rl, err := parseRevocationList(der)
	if err != nil {
		return nil, err
	}
	c := &CRL{RL: rl, entries: map[string]crlEntry{}, raw: der}
	c.issuerDN, _, err = parseDN(rl.RawIssuer)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer name", ErrMalformedCRL)
	}
	c.issuerKey = c.issuerDN.key()
	for _, e := range rl.Extensions {
		switch {
		case e.Id.Equal(oidExtIssuingDistPoint):
			idp, err := issuingDistributionPoint(e.Value)
			if err != nil {
				return nil, fmt.Errorf("%w: issuing distribution point", ErrMalformedCRL)
			}
			c.idp, c.idpRaw = &idp, e.Value
		case e.Id.Equal(oidExtDeltaCRLIndicator):
			n := new(big.Int)
			if rest, err := asn1.Unmarshal(e.Value, &n); err != nil || len(rest) > 0 {
				return nil, fmt.Errorf("%w: delta CRL indicator", ErrMalformedCRL)
			}
			c.delta, c.baseNumber = true, n
		case e.Id.Equal(oidExtCRLNumber), e.Id.Equal(oidExtAuthorityKeyID), e.Id.Equal(oidExtFreshestCRL),
			e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 18}): // issuerAltName
		default:
			if e.Critical && c.problem == "" {
				c.problem = fmt.Sprintf("unknown critical CRL extension %s", e.Id)
			}
		}
	}
	cur := c.issuerKey
	for _, r := range rl.RevokedCertificateEntries {
		ent := crlEntry{when: r.RevocationTime, reason: r.ReasonCode}
		for _, e := range r.Extensions {
			switch {
			case e.Id.Equal(oidExtCertificateIssuer):
				s := cryptobyte.String(e.Value)
				var seq cryptobyte.String
				if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
					return nil, fmt.Errorf("%w: certificate issuer", ErrMalformedCRL)
				}
				names, err := readGeneralNames(seq)
				if err != nil {
					return nil, fmt.Errorf("%w: certificate issuer", ErrMalformedCRL)
				}
				for _, n := range names {
					if n.tag == gnDirectory {
						cur = nameKey(n.value)
						break
					}
				}
			case e.Id.Equal(oidExtInvalidityDate):
				// A non-critical extension that can only move the
				// revocation earlier (docs/security.md "Revocation and
				// proof of existence"); one that does not parse is
				// ignored and the revocation date stands.
				var t time.Time
				if rest, err := asn1.UnmarshalWithParams(e.Value, &t, "generalized"); err == nil && len(rest) == 0 {
					ent.compromised = t
				}
			case e.Id.Equal(oidExtReasonCode),
				e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 23}): // holdInstructionCode
			default:
				if e.Critical && c.problem == "" {
					c.problem = fmt.Sprintf("unknown critical CRL entry extension %s", e.Id)
				}
			}
		}
		if r.SerialNumber != nil {
			c.entries[cur+"#"+r.SerialNumber.String()] = ent
		}
	}
	return c, nil
}

// parseRevocationList parses a v2 CRL with crypto/x509, and a v1 CRL (no
// version field: what `openssl ca -gencrl` writes without CRL extensions,
// RFC 5280 5.1.2.1) by giving crypto/x509, which refuses v1, the same CRL
// with version v2 inserted, then putting the original bytes back, so that
// the signature is checked over what the issuer signed. A v1 CRL must not
// carry extensions. The input is bounded by MaxCRLBytes; the copy is one
// allocation of its size plus three bytes.
func parseRevocationList(der []byte) (*x509.RevocationList, error) {
	v1, tbs, ok := v1CRL(der)
	if !ok {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformedCRL, err)
		}
		return rl, nil
	}
	rl, err := x509.ParseRevocationList(v1)
	if err != nil {
		return nil, fmt.Errorf("%w: version 1 CRL: %w", ErrMalformedCRL, err)
	}
	if len(rl.Extensions) > 0 {
		return nil, fmt.Errorf("%w: a version 1 CRL carries extensions", ErrMalformedCRL)
	}
	for _, e := range rl.RevokedCertificateEntries {
		if len(e.Extensions) > 0 {
			return nil, fmt.Errorf("%w: a version 1 CRL entry carries extensions", ErrMalformedCRL)
		}
	}
	rl.Raw, rl.RawTBSRevocationList = der, tbs
	return rl, nil
}

// v1CRL recognises CertificateList { TBSCertList, signatureAlgorithm,
// signatureValue } whose TBSCertList has no version (it starts with the
// signature AlgorithmIdentifier, a SEQUENCE) and returns the same
// CertificateList with version v2 inserted, and the original TBSCertList.
func v1CRL(der []byte) (v2 []byte, tbs []byte, ok bool) {
	in := cryptobyte.String(der)
	var list, tbsElem cryptobyte.String
	if !in.ReadASN1(&list, cbasn1.SEQUENCE) || !in.Empty() || !list.ReadASN1Element(&tbsElem, cbasn1.SEQUENCE) {
		return nil, nil, false
	}
	inner := tbsElem
	var tbsBody cryptobyte.String
	if !inner.ReadASN1(&tbsBody, cbasn1.SEQUENCE) || !tbsBody.PeekASN1Tag(cbasn1.SEQUENCE) {
		return nil, nil, false // a version field (or garbage): crypto/x509 decides
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(1) // v2
			b.AddBytes(tbsBody)
		})
		b.AddBytes(list) // signatureAlgorithm and signatureValue
	})
	out, err := b.Bytes()
	if err != nil {
		return nil, nil, false
	}
	return out, tbsElem, true
}

// revStatus is what the CRLs say about one certificate.
type revStatus struct {
	revoked bool
	when    time.Time
	reason  int
	// compromised is when the key is known or suspected to have been
	// compromised (a CRL entry's invalidityDate), zero when not said.
	compromised time.Time
	unknown     string // why the status could not be established
	// evidence: the CRLs or OCSP response the status rests on, for
	// Verdict.Used.
	evidence []UsedObject
}

// crlChecker is RFC 5280 6.3 over a set of CRLs for one validation.
type crlChecker struct {
	crls  []*CRL
	at    time.Time
	now   time.Time
	tol   time.Duration
	opts  PathOptions
	depth int
	// kcAny: a keyCompromise revocation counts even after at
	// (Request.KeyCompromiseAnyTime).
	kcAny bool
	// later: every revocation is reported, also one dated after at; the
	// caller judges it (a signing certificate, signatureRevocation).
	later bool
}

// revocation implements revocationChecker for PKITS-style "require" use.
func (k *crlChecker) revocation(p *Path, i int) *finding {
	st := k.check(p, i)
	return st.finding(p.Certs[i])
}

func (st revStatus) finding(c *x509.Certificate) *finding {
	switch {
	case st.revoked:
		return &finding{Invalid, CodeRevoked, fmt.Sprintf("%q was revoked on %s (reason %d)", c.Subject.String(), st.when.UTC().Format(time.RFC3339), st.reason)}
	case st.unknown != "":
		return &finding{Indeterminate, CodeRevocationUnknown, fmt.Sprintf("revocation status of %q unknown: %s", c.Subject.String(), st.unknown)}
	}
	return nil
}

// maxCRLSignerDepth bounds the recursion into validating CRL signers'
// own paths (which need their own CRLs).
const maxCRLSignerDepth = 2

// check establishes the status of p.Certs[i].
func (k *crlChecker) check(p *Path, i int) revStatus {
	c := p.Certs[i]
	issuer := p.Anchor
	if i > 0 {
		issuer = p.Certs[i-1]
	}
	dps, err := crlDistributionPoints(c)
	if err != nil {
		return revStatus{unknown: "malformed CRL distribution points extension"}
	}
	if len(dps) == 0 {
		dps = []distributionPoint{{}}
	}
	certIssuerDN, _, err := parseDN(c.RawIssuer)
	if err != nil {
		return revStatus{unknown: "malformed issuer name"}
	}
	certIssuer := certIssuerDN.key()
	mask := uint16(0)
	var why string
	var found *revStatus
	var evidence []UsedObject
	for _, crl := range k.crls {
		if crl.delta {
			continue
		}
		if k.superseded(crl, p, i, issuer) {
			continue
		}
		for _, dp := range dps {
			if err := k.opts.Budget.Step(); err != nil { // work budget (docs/security.md)
				return revStatus{unknown: "validation stopped at the work budget or deadline"}
			}
			reasons, ok, bad := k.inScope(crl, c, dp, certIssuer, certIssuerDN)
			if !ok {
				if bad != "" && why == "" {
					why = bad
				}
				continue
			}
			reasons &^= mask
			if reasons == 0 {
				continue
			}
			if msg := k.usable(crl, p, i, issuer); msg != "" {
				if why == "" {
					why = msg
				}
				continue
			}
			st := k.lookup(crl, certIssuer, c, p, i, issuer)
			if st.unknown != "" {
				if why == "" {
					why = st.unknown
				}
				continue
			}
			if st.revoked {
				return st
			}
			evidence = append(evidence, st.evidence...)
			if found == nil {
				found = &st
			}
			mask |= reasons
		}
	}
	// Every applicable CRL is consulted before a certificate counts as
	// good: a CA may sign with an old and a new key (RFC 4210 rollover) or
	// keep a separate CRL signing key, and one of its CRLs may omit what
	// another lists (PKITS 4.5.5, 4.5.7).
	if mask == allReasons && found != nil {
		st := *found
		st.evidence = evidence
		return st
	}
	if why == "" {
		why = "no CRL covers the certificate"
	}
	return revStatus{unknown: why}
}

// inScope is 6.3.3 (b): the CRL applies to the certificate through dp.
func (k *crlChecker) inScope(crl *CRL, c *x509.Certificate, dp distributionPoint, certIssuer string, certIssuerDN dn) (uint16, bool, string) {
	if len(dp.crlIssuer) > 0 {
		match := false
		for _, n := range dp.crlIssuer {
			if n.tag == gnDirectory && nameKey(n.value) == crl.issuerKey {
				match = true
			}
		}
		if !match || crl.idp == nil || !crl.idp.indirectCRL {
			return 0, false, ""
		}
	} else if crl.issuerKey != certIssuer {
		if crl.idp == nil || !crl.idp.indirectCRL {
			return 0, false, ""
		}
		// An indirect CRL may hold entries of this issuer; the lookup
		// decides by the entries' certificate issuer.
	}
	reasons := uint16(allReasons)
	if idp := crl.idp; idp != nil {
		if idp.hasName {
			idpNames := dpNameKeys(*idp, crl.issuerDN)
			var certNames map[string]bool
			switch {
			case dp.hasName:
				base := certIssuerDN
				if len(dp.crlIssuer) > 0 {
					for _, n := range dp.crlIssuer {
						if n.tag == gnDirectory {
							base, _, _ = parseDN(n.value)
						}
					}
				}
				certNames = dpNameKeys(dp, base)
			case len(dp.crlIssuer) > 0:
				certNames = map[string]bool{}
				for _, n := range dp.crlIssuer {
					certNames[n.key()] = true
				}
			default:
				// The CRL covers only the named distribution point and the
				// certificate names none (PKITS 4.14.9).
				certNames = map[string]bool{}
			}
			if certNames != nil {
				match := false
				for n := range idpNames {
					if certNames[n] {
						match = true
					}
				}
				if !match {
					return 0, false, "the CRL's issuing distribution point does not match the certificate's"
				}
			}
		}
		isCA := c.BasicConstraintsValid && c.IsCA
		if idp.onlyUser && isCA {
			return 0, false, ""
		}
		if idp.onlyCA && !isCA {
			return 0, false, ""
		}
		if idp.onlyAttr {
			return 0, false, ""
		}
		if idp.reasons != 0 {
			reasons &= idp.reasons << 0
		}
	}
	if dp.reasons != 0 {
		reasons &= dp.reasons
	}
	return reasons & allReasons, true, ""
}

func dpNameKeys(dp distributionPoint, issuer dn) map[string]bool {
	out := map[string]bool{}
	for _, n := range dp.names {
		out[n.key()] = true
	}
	if dp.relative != nil {
		full := append(append(dn{}, issuer...), dp.relative)
		out["dn:"+full.key()] = true
	}
	return out
}

// sameScope reports whether two CRLs are issues of one series: the same
// issuer, issuing distribution point and signing key (a CA rolling its key
// over keeps one series per key, RFC 4210; PKITS 4.5.5, 4.5.7).
func sameScope(a, b *CRL) bool {
	return a.delta == b.delta && a.issuerKey == b.issuerKey && bytes.Equal(a.idpRaw, b.idpRaw) &&
		bytes.Equal(a.RL.AuthorityKeyId, b.RL.AuthorityKeyId)
}

// newer reports whether a was issued after b: by CRL number when both
// carry one (RFC 5280 5.2.3, monotonically increasing), else thisUpdate.
func newer(a, b *CRL) bool {
	if a.RL.Number != nil && b.RL.Number != nil {
		return a.RL.Number.Cmp(b.RL.Number) > 0
	}
	return a.RL.ThisUpdate.After(b.RL.ThisUpdate)
}

// superseded reports whether a newer usable CRL of the same series is at
// hand: only the newest complete CRL of a series speaks (a hold it no
// longer lists is lifted, RFC 5280 5.3.1; docs/security.md "Revocation").
func (k *crlChecker) superseded(crl *CRL, p *Path, i int, issuer *x509.Certificate) bool {
	for _, d := range k.crls {
		if d != crl && sameScope(d, crl) && newer(d, crl) && k.usable(d, p, i, issuer) == "" {
			return true
		}
	}
	return false
}

// usable checks the CRL's own validity: critical extensions, freshness and
// its signature by an issuer with a valid path to the same anchor.
//
// Freshness (RFC 5280 6.3.3 (a), EN 319 102-1 5.2.5): a CRL proves the
// status at the validation time T when it is current now (thisUpdate not
// in the future, nextUpdate not passed: a certificate good now was good
// at every earlier T, revocation being final) or when it was issued at or
// after T (it knows every revocation up to T, even once expired). A CRL
// issued before T that has expired knows nothing of revocations between
// its thisUpdate and T, so it proves nothing. Both with the policy's clock
// tolerance.
func (k *crlChecker) usable(crl *CRL, p *Path, i int, issuer *x509.Certificate) string {
	if crl.problem != "" {
		return crl.problem
	}
	if crl.RL.ThisUpdate.After(k.now.Add(k.tol)) {
		return "the CRL was issued in the future"
	}
	current := crl.RL.NextUpdate.IsZero() || !crl.RL.NextUpdate.Add(k.tol).Before(k.now)
	issuedAfter := !crl.RL.ThisUpdate.Add(k.tol).Before(k.at)
	if !current && !issuedAfter {
		return fmt.Sprintf("the CRL of %q expired (nextUpdate %s) and was issued before the validation time", crl.RL.Issuer.String(), crl.RL.NextUpdate.UTC().Format(time.RFC3339))
	}
	if !k.signedBy(crl, p, i, issuer) {
		return fmt.Sprintf("the CRL of %q is not signed by a valid CRL issuer", crl.RL.Issuer.String())
	}
	return ""
}

func (k *crlChecker) signedBy(crl *CRL, p *Path, i int, issuer *x509.Certificate) bool {
	try := func(s *x509.Certificate) bool {
		if s.KeyUsage != 0 && s.KeyUsage&x509.KeyUsageCRLSign == 0 {
			return false
		}
		// Cached per call and charged to its work budget (docs/security.md).
		return k.opts.Budget.CheckSignature(s, crl.RL.SignatureAlgorithm, crl.RL.RawTBSRevocationList, crl.RL.Signature) == nil
	}
	// The certificate's issuer, the anchor and certificates earlier in the
	// path are validated by the path itself.
	trusted := append([]*x509.Certificate{issuer, p.Anchor}, p.Certs[:i]...)
	if k.depth > 0 {
		// While validating a CRL issuer's own path, its certificate may be
		// covered by a CRL it signed itself (PKITS 4.14.30).
		trusted = append(trusted, p.Certs[i])
	}
	for _, s := range trusted {
		if nameKey(s.RawSubject) == crl.issuerKey && try(s) {
			return true
		}
	}
	if k.depth >= maxCRLSignerDepth {
		return false
	}
	// Another certificate of the CRL issuer (a separate CRL signing key, a
	// key rollover, an indirect CRL issuer): validate its own path to the
	// same anchor, revocation included (6.3.3 (f)).
	for _, s := range k.opts.Intermediates {
		if k.opts.Budget.Step() != nil { // work budget (docs/security.md)
			return false
		}
		if nameKey(s.RawSubject) != crl.issuerKey || !try(s) {
			continue
		}
		o := k.opts
		o.Anchors = []*x509.Certificate{p.Anchor}
		o.InitialPolicies, o.ExplicitPolicy = nil, false
		sub := &crlChecker{crls: k.crls, at: k.at, now: k.now, tol: k.tol, opts: o, depth: k.depth + 1}
		if _, f := findPath(s, o, sub); len(f) == 0 {
			return true
		}
	}
	return false
}

// lookup finds the certificate in the CRL and in a delta CRL of it.
func (k *crlChecker) lookup(crl *CRL, certIssuer string, c *x509.Certificate, p *Path, i int, issuer *x509.Certificate) revStatus {
	key := certIssuer + "#" + c.SerialNumber.String()
	st := revStatus{}
	if e, ok := crl.entries[key]; ok && e.reason != reasonRemoveFromCRL {
		st = revStatus{revoked: true, when: e.when, reason: e.reason, compromised: e.compromised}
	}
	// Delta CRLs (5.2.4): same issuer and scope, based on this CRL or an
	// earlier one; the newest usable one speaks (it carries every change
	// since its base).
	var delta *CRL
	for _, d := range k.crls {
		if !d.delta || d.issuerKey != crl.issuerKey || !bytes.Equal(d.idpRaw, crl.idpRaw) {
			continue
		}
		if crl.RL.Number == nil || d.baseNumber.Cmp(crl.RL.Number) > 0 {
			continue
		}
		if d.RL.Number != nil && d.RL.Number.Cmp(crl.RL.Number) <= 0 {
			continue
		}
		if delta != nil && !newer(d, delta) {
			continue
		}
		if k.usable(d, p, i, issuer) != "" {
			continue
		}
		delta = d
	}
	if delta != nil {
		if e, ok := delta.entries[key]; ok {
			if e.reason == reasonRemoveFromCRL {
				st = revStatus{}
			} else {
				st = revStatus{revoked: true, when: e.when, reason: e.reason, compromised: e.compromised}
			}
		}
	}
	st.evidence = append(st.evidence, crl.used())
	if delta != nil {
		st.evidence = append(st.evidence, delta.used())
	}
	if st.revoked && st.when.After(k.at) && !k.later && !(k.kcAny && st.reason == reasonKeyCompromise) {
		// Revoked after the time we judge at: good at that time.
		return revStatus{evidence: st.evidence}
	}
	return st
}

// used is the CRL as a validation object of a report.
func (crl *CRL) used() UsedObject {
	raw := crl.raw
	if raw == nil {
		raw = crl.RL.Raw
	}
	return UsedObject{Kind: ObjectCRL, Raw: raw, Time: crl.RL.ThisUpdate, Name: crl.RL.Issuer.String()}
}
