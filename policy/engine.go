package policy

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Errors of the engine.
var (
	// ErrUnknownPolicy: the request names a policy that is not configured.
	ErrUnknownPolicy = errors.New("policy: unknown policy")
	// ErrInvalidPolicy: a policy definition is unusable.
	ErrInvalidPolicy = errors.New("policy: invalid policy")
)

// RevocationMode says how much revocation matters.
type RevocationMode string

// Revocation modes.
const (
	// RevocationRequire: a certificate whose status cannot be established
	// makes the verdict INDETERMINATE (REVOCATION_UNKNOWN).
	RevocationRequire RevocationMode = "require"
	// RevocationPrefer: revocation is checked with what is available; an
	// unknown status is a reason but leaves the status VALID.
	RevocationPrefer RevocationMode = "prefer"
	// RevocationOff: no revocation checking.
	RevocationOff RevocationMode = "off"
)

// ParseRevocationMode checks a mode name; "" is allowed and means "the
// policy's mode".
func ParseRevocationMode(s string) (RevocationMode, error) {
	switch m := RevocationMode(s); m {
	case "", RevocationRequire, RevocationPrefer, RevocationOff:
		return m, nil
	}
	return "", fmt.Errorf("%w: revocation mode %q (require, prefer, off)", ErrInvalidPolicy, s)
}

// Purpose rules: which key usage bits (any of) and extended key usages
// (any of, or anyExtendedKeyUsage) a leaf needs for a purpose.
type PurposeRule struct {
	KeyUsage x509.KeyUsage
	EKU      []x509.ExtKeyUsage
}

// DefaultPurposeRules are used for purposes a policy does not configure.
var DefaultPurposeRules = map[Purpose]PurposeRule{
	PurposeSigning:      {KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment},
	PurposeEncryption:   {KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement},
	PurposeTimestamping: {KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}},
}

// Policy is one named validation policy (README.md "Certificate policy").
type Policy struct {
	Name        string
	Description string
	// Anchors are trust anchors from PEM files.
	Anchors []*x509.Certificate
	// TrustedList, when set, adds the CA/QC services granted at the
	// validation time as anchors, and makes qualification meaningful.
	TrustedList *TrustedList
	// TrustedListGrace is how long after the list's NextUpdate it is still
	// relied on. Past it a path to one of the list's anchors is
	// INDETERMINATE (TRUSTED_LIST_EXPIRED): a list that was due to be
	// replaced may no longer say which services are granted (ETSI TS 119
	// 612 5.3.15; TS 119 615 has the relying party check it is current).
	TrustedListGrace time.Duration
	// Intermediates are configured CA certificates offered to path
	// building besides those a request carries.
	Intermediates []*x509.Certificate
	Algorithms    *AlgorithmRules
	Purposes      map[Purpose]PurposeRule
	// RequiredPolicies: the path must be valid for one of these policy
	// OIDs (RFC 5280 user-initial-policy-set with explicit policy).
	RequiredPolicies []string
	// RequiredQCStatements: the leaf must carry each (compliance, sscd,
	// esign, eseal, web).
	RequiredQCStatements []string
	Revocation           RevocationMode
	CRLs                 []*CRL
	// FetchCRLs fetches CRLs from the certificates' distribution points;
	// OCSP asks the certificates' OCSP responders. Both need Engine.Fetcher.
	FetchCRLs bool
	OCSP      bool
	// OCSPMaxAge bounds the age of OCSP responses without nextUpdate
	// (0: DefaultOCSPMaxAge). OCSPNoNonce sends no nonce and accepts
	// responses without one (pre-produced responses, RFC 5019).
	OCSPMaxAge     time.Duration
	OCSPNoNonce    bool
	ClockTolerance time.Duration
	// AllowOverrides lists the per-call overrides callers may make (nil:
	// none); a stricter revocation mode is always accepted.
	AllowOverrides []Override
}

// PolicyInfo describes a configured policy.
type PolicyInfo struct {
	Name        string
	Description string
	Default     bool
	Revocation  RevocationMode
	Anchors     []AnchorInfo
	Qualified   bool // RequiredQCStatements set
	// AllowOverrides lists the per-call overrides the policy accepts.
	AllowOverrides []Override
	// Algorithms describes the algorithm rules in force (defaults
	// included).
	Algorithms string
	// TrustedList is the policy's trusted list in force (nil: none).
	TrustedList *TrustedList
}

// AnchorInfo names a trust anchor and where it came from.
type AnchorInfo struct {
	Subject string
	Source  string // "pem" or the trust service name from a trusted list
	Cert    *x509.Certificate
}

// Engine is the accredited-CA policy engine: it implements Validator with
// named policies.
type Engine struct {
	policies map[string]*Policy
	def      string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Fetcher gets CRLs and OCSP responses over HTTP; nil disables both.
	Fetcher *Fetcher
}

// NewEngine checks the policies and picks the default.
func NewEngine(defaultPolicy string, policies ...*Policy) (*Engine, error) {
	e := &Engine{policies: map[string]*Policy{}, def: defaultPolicy}
	for _, p := range policies {
		if p.Name == "" {
			return nil, fmt.Errorf("%w: a policy has no name", ErrInvalidPolicy)
		}
		if _, dup := e.policies[p.Name]; dup {
			return nil, fmt.Errorf("%w: policy %q defined twice", ErrInvalidPolicy, p.Name)
		}
		if p.Revocation == "" {
			p.Revocation = RevocationPrefer
		}
		if _, err := ParseRevocationMode(string(p.Revocation)); err != nil {
			return nil, err
		}
		for _, o := range p.AllowOverrides {
			if !slices.Contains(OverrideNames, o) {
				return nil, fmt.Errorf("%w: policy %q: unknown override %q (revocation, anchors, crls)", ErrInvalidPolicy, p.Name, o)
			}
		}
		for _, q := range p.RequiredQCStatements {
			if !slices.Contains(QCStatementNames, q) {
				return nil, fmt.Errorf("%w: policy %q: unknown QC statement %q", ErrInvalidPolicy, p.Name, q)
			}
		}
		e.policies[p.Name] = p
	}
	if _, ok := e.policies[defaultPolicy]; !ok {
		return nil, fmt.Errorf("%w: default policy %q is not defined", ErrInvalidPolicy, defaultPolicy)
	}
	return e, nil
}

// Default names the default policy.
func (e *Engine) Default() string { return e.def }

// Has reports whether a policy is configured ("" means the default).
func (e *Engine) Has(name string) bool {
	if name == "" {
		return true
	}
	_, ok := e.policies[name]
	return ok
}

// Policies describes every policy, sorted by name, with the anchors in
// force at t.
func (e *Engine) Policies(t time.Time) []PolicyInfo {
	if t.IsZero() {
		t = e.now()
	}
	var out []PolicyInfo
	for _, p := range e.policies {
		out = append(out, e.info(p, t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Describe describes one policy.
func (e *Engine) Describe(name string, t time.Time) (PolicyInfo, error) {
	if name == "" {
		name = e.def
	}
	p, ok := e.policies[name]
	if !ok {
		return PolicyInfo{}, fmt.Errorf("%w: %q", ErrUnknownPolicy, name)
	}
	if t.IsZero() {
		t = e.now()
	}
	return e.info(p, t), nil
}

func (e *Engine) info(p *Policy, t time.Time) PolicyInfo {
	pi := PolicyInfo{Name: p.Name, Description: p.Description, Default: p.Name == e.def, Revocation: p.Revocation, Qualified: len(p.RequiredQCStatements) > 0,
		Algorithms: p.Algorithms.Describe(), AllowOverrides: slices.Clone(p.AllowOverrides)}
	for _, a := range p.Anchors {
		pi.Anchors = append(pi.Anchors, AnchorInfo{Subject: a.Subject.String(), Source: "pem", Cert: a})
	}
	if p.TrustedList != nil {
		pi.TrustedList = p.TrustedList
		for _, a := range p.TrustedList.AnchorsAt(t) {
			pi.Anchors = append(pi.Anchors, AnchorInfo{Subject: a.Cert.Subject.String(), Source: a.Service, Cert: a.Cert})
		}
	}
	return pi
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Validate implements Validator.
func (e *Engine) Validate(r Request) Verdict {
	ctx := r.Context
	if ctx == nil {
		ctx = context.Background()
	}
	v := Verdict{Status: Valid}
	name := r.Policy
	if name == "" {
		name = e.def
	}
	v.Policy = name
	p, ok := e.policies[name]
	if !ok {
		v.Add(Indeterminate, CodeUnknownPolicy, fmt.Sprintf("no policy named %q is configured", name))
		return v
	}
	// Per-call overrides are reported in the verdict; one the policy
	// forbids is never applied (servers refuse the call earlier with
	// CheckOverrides; docs/security.md "Per-call overrides").
	used, forbidden := p.overrides(r)
	v.Overrides = used
	if len(forbidden) > 0 {
		v.Add(Indeterminate, CodeOverrideForbidden, (&OverrideError{Policy: name, Forbidden: forbidden}).Error())
		return v
	}
	if r.Leaf == nil {
		v.Add(Indeterminate, CodeSignerNotFound, "no certificate to validate")
		return v
	}
	v.Subject = r.Leaf.Subject.String()
	// The three times (docs/security.md "Revocation and proof of
	// existence"): clock is the engine's clock, the default of at and the
	// time the trusted list's freshness is judged at; now, the time
	// revocation data's currency is judged at, is Request.Now when set.
	clock := e.now()
	now := clock
	if !r.Now.IsZero() {
		now = r.Now
	}
	at := r.At
	if at.IsZero() {
		at = clock
	}
	v.ValidatedAt = at
	mode := p.Revocation
	if r.Revocation != "" {
		mode = r.Revocation
	}
	anchors := slices.Clone(p.Anchors)
	tlAnchor := map[*x509.Certificate]bool{}
	tlService := map[*x509.Certificate]TrustedAnchor{}
	if p.TrustedList != nil {
		tl := p.TrustedList.AnchorsAt(at)
		if r.Purpose == PurposeTimestamping {
			tl = append(tl, p.TrustedList.TimestampAnchorsAt(at)...)
		}
		for _, a := range tl {
			anchors = append(anchors, a.Cert)
			tlAnchor[a.Cert] = true
			tlService[a.Cert] = a
		}
	}
	// The policy's own anchors, by content: only paths to them may make
	// pecetd fetch CRLs or ask OCSP responders; a per-call anchor would
	// let a caller send pecetd to any URL (docs/security.md "Fetching
	// CRLs and OCSP responses").
	own := make(map[string]bool, len(anchors))
	for _, a := range anchors {
		own[string(a.Raw)] = true
	}
	anchors = append(anchors, r.Anchors...)
	if len(anchors) == 0 {
		v.Add(Indeterminate, CodeUntrustedRoot, fmt.Sprintf("policy %q has no trust anchors at %s", name, at.UTC().Format(time.RFC3339)))
		return v
	}
	inter := append(slices.Clone(r.Intermediates), p.Intermediates...)
	// One budget for the whole call (docs/security.md "Work budget per
	// verification"): the server puts it in the context so that a
	// signature's validation and its time-stamps' share it.
	budget := BudgetFrom(ctx)
	if budget == nil {
		budget = NewBudget(ctx, DefaultLimits)
	}
	o := PathOptions{
		Anchors:        anchors,
		Intermediates:  inter,
		At:             at,
		ClockTolerance: p.ClockTolerance,
		Budget:         budget,
	}
	if len(p.RequiredPolicies) > 0 {
		o.InitialPolicies, o.ExplicitPolicy = p.RequiredPolicies, true
	}
	// Under "off" the CRLs at hand (the policy's and the caller's) are still
	// used: off only means an unknown status is no failure and nothing is
	// fetched (docs/security.md "Revocation").
	var rev revocationChecker
	var er *engineRevocation
	extra := r.CRLs
	if len(r.EmbeddedCRLs) > 0 {
		extra = append(slices.Clip(extra), r.EmbeddedCRLs...)
	}
	if mode != RevocationOff || len(p.CRLs)+len(extra) > 0 {
		er = &engineRevocation{ctx: ctx, e: e, p: p, mode: mode, extra: extra, at: at, now: now, opts: o, kcAny: r.KeyCompromiseAnyTime, own: own, sig: r.Signature, leaf: r.Leaf}
		rev = er
	}
	path, findings := findPath(r.Leaf, o, rev)
	if path != nil {
		v.Chain = path.Chain()
	}
	if er != nil {
		for _, u := range er.used {
			v.Use(u)
		}
	}
	if path != nil && tlAnchor[path.Anchor] {
		tl := p.TrustedList
		v.Use(UsedObject{Kind: ObjectTrustedList, Digest: tl.SHA256, Time: tl.IssueDate, Name: tl.Territory + " trusted list, sequence " + tl.SequenceNumber})
	}
	for _, f := range findings {
		v.Add(f.status, f.code, f.msg)
	}
	if path == nil || v.Status == Invalid {
		return v
	}
	if k, ok := r.Leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() > MaxRSAModulusBits {
		v.Add(Invalid, CodeWeakAlgorithm, fmt.Sprintf("the certificate's RSA key has %d bits; pecet verifies with RSA keys of at most %d bits", k.N.BitLen(), MaxRSAModulusBits))
	}
	// Every key and signature of the path, the leaf's and the anchor's
	// keys included, under the policy's rules or the defaults.
	addAlgProblems(&v, p.Algorithms.checkPath(path, at))
	e.checkPurpose(&v, p, r.Leaf, r.Purpose)
	qc, err := ParseQC(r.Leaf)
	if err != nil {
		v.Add(Invalid, CodeMalformed, "the certificate's QCStatements extension is malformed")
		return v
	}
	for _, q := range p.RequiredQCStatements {
		if !qc.Has(q) {
			v.Add(Invalid, CodeMissingQCStatement, fmt.Sprintf("the certificate lacks the QC statement %s the policy requires", q))
		}
	}
	if tlAnchor[path.Anchor] {
		// The list loaded is the operator's current one: whether it is due
		// to be replaced is a question of the clock, not of Request.Now.
		if nu := p.TrustedList.NextUpdate; !nu.IsZero() && clock.After(nu.Add(p.TrustedListGrace)) {
			v.Add(Indeterminate, CodeTrustedListExpired, fmt.Sprintf("the trusted list (%s, sequence %s) was due to be replaced at %s: load a current list", p.TrustedList.Territory, p.TrustedList.SequenceNumber, nu.UTC().Format(time.RFC3339)))
		}
	}
	v.Qualification = qc.Qualification()
	if a, ok := tlService[path.Anchor]; ok && len(a.Qualifications) > 0 {
		// The list's qualifiers for the certificates of the service
		// override what the certificate says (docs/security.md "Trusted
		// lists").
		q, notQualified, applied := qualifyByList(r.Leaf, qc, a.Qualifications)
		if len(applied) > 0 {
			v.Qualification = q
			v.Add(Valid, CodeTrustedListQualifier, fmt.Sprintf("the trusted list service %q qualifies the certificate %s: %s", a.Service, strings.Join(applied, ", "), q))
			if notQualified && len(p.RequiredQCStatements) > 0 {
				v.Add(Invalid, CodeNotQualified, fmt.Sprintf("the trusted list service %q says the certificate is not qualified", a.Service))
			}
		}
	}
	if v.Qualification != AdES && p.TrustedList != nil && !tlAnchor[path.Anchor] {
		// eIDAS: only a provider on a trusted list with a granted CA/QC
		// service issues qualified certificates.
		v.Qualification = AdES
		if len(p.RequiredQCStatements) > 0 {
			v.Add(Invalid, CodeNotQualified, "the certificate claims to be qualified but its anchor is not a granted CA/QC service of the trusted list")
		}
	}
	return v
}

func (e *Engine) checkPurpose(v *Verdict, p *Policy, leaf *x509.Certificate, purpose Purpose) {
	if purpose == "" || purpose == PurposeAny {
		return
	}
	rule, ok := p.Purposes[purpose]
	if !ok {
		rule, ok = DefaultPurposeRules[purpose]
	}
	if !ok {
		v.Add(Indeterminate, CodeKeyUsage, fmt.Sprintf("unknown purpose %q", purpose))
		return
	}
	if leaf.KeyUsage != 0 && rule.KeyUsage != 0 && leaf.KeyUsage&rule.KeyUsage == 0 {
		v.Add(Invalid, CodeKeyUsage, fmt.Sprintf("the certificate's key usage does not allow %s", purpose))
	}
	if len(rule.EKU) > 0 {
		okEKU := slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny)
		for _, u := range rule.EKU {
			if slices.Contains(leaf.ExtKeyUsage, u) {
				okEKU = true
			}
		}
		if !okEKU {
			v.Add(Invalid, CodeKeyUsage, fmt.Sprintf("the certificate's extended key usage does not allow %s", purpose))
		}
	}
}

// engineRevocation checks a path certificate with the policy's CRLs, the
// request's, fetched ones and OCSP, and applies the mode.
type engineRevocation struct {
	ctx   context.Context
	e     *Engine
	p     *Policy
	mode  RevocationMode
	extra []*CRL
	at    time.Time
	now   time.Time
	opts  PathOptions
	kcAny bool
	// own holds the DER of the policy's anchors: fetching is only for
	// paths to them.
	own map[string]bool
	// used collects the CRLs and OCSP responses the statuses rest on.
	used []UsedObject
	// sig and leaf: the leaf is a signature's signing certificate
	// (Request.Signature); its revocation and its CAs' are judged by
	// signatureRevocation.
	sig  *SignatureTime
	leaf *x509.Certificate
}

func (r *engineRevocation) revocation(path *Path, i int) *finding {
	c := path.Certs[i]
	// Every certificate of a signature's path, the signing certificate and
	// its CAs, is judged against the signature's proof of existence
	// (signatureRevocation); a TSA's (kcAny) keeps the plain rule.
	signing := r.sig != nil && !r.kcAny
	ca := r.leaf == nil || !bytes.Equal(c.Raw, r.leaf.Raw)
	crls := append(slices.Clone(r.p.CRLs), r.extra...)
	if r.mode == RevocationOff {
		k := &crlChecker{crls: crls, at: r.at, now: r.now, tol: r.p.ClockTolerance, opts: r.opts, kcAny: r.kcAny, later: signing}
		st := k.check(path, i)
		r.used = append(r.used, st.evidence...)
		switch {
		case st.revoked && signing:
			return r.signatureRevocation(st, c, ca)
		case st.revoked:
			return st.finding(c)
		}
		return nil
	}
	fetch := r.e.Fetcher != nil && path.Anchor != nil && r.own[string(path.Anchor.Raw)]
	var fetchProblem string
	if r.p.FetchCRLs && fetch {
		var got []*CRL
		got, fetchProblem = r.e.Fetcher.CRLsForStatus(r.ctx, c)
		crls = append(crls, got...)
	}
	k := &crlChecker{crls: crls, at: r.at, now: r.now, tol: r.p.ClockTolerance, opts: r.opts, kcAny: r.kcAny, later: signing}
	st := k.check(path, i)
	if st.unknown != "" && fetchProblem != "" {
		st.unknown += "; " + fetchProblem
	}
	if st.unknown != "" && (r.p.FetchCRLs || r.p.OCSP) && r.e.Fetcher != nil && !fetch {
		st.unknown += "; nothing is fetched for a path to an anchor sent with the request (configure it in a server-side policy)"
	}
	if st.unknown != "" && r.p.OCSP && fetch {
		issuer := path.Anchor
		if i > 0 {
			issuer = path.Certs[i-1]
		}
		ocspAt := r.at
		if r.kcAny {
			ocspAt = r.now // to see a later keyCompromise revocation
		}
		if ost, ok := r.e.Fetcher.OCSPStatus(r.ctx, c, issuer, ocspAt, r.ocspRules()); ok {
			if ost.revoked && ost.when.After(r.at) && ost.reason != reasonKeyCompromise {
				ost = revStatus{} // revoked after at for another reason: good then
			}
			st = ost
		} else if ost.unknown != "" {
			st.unknown += "; OCSP: " + ost.unknown
		}
	}
	r.used = append(r.used, st.evidence...)
	if st.revoked && signing {
		return r.signatureRevocation(st, c, ca)
	}
	f := st.finding(c)
	if f != nil && f.code == CodeRevocationUnknown && r.mode == RevocationPrefer {
		f.status = Valid // reported, but does not lower the verdict
	}
	return f
}

// signatureRevocation judges a revoked certificate of a signature's path,
// the signing certificate or (ca) a CA of its path, against the
// signature's times, after ETSI EN 319 102-1 (docs/security.md
// "Revocation and proof of existence"); nil when it was good at r.at.
//
// The revocation counts from its date, or from the invalidityDate of a
// keyCompromise entry when that is earlier (the key may have signed for
// someone else since: a CA's, certificates for someone else). Revoked
// after the earliest proof of existence (r.at): good. Otherwise INVALID,
// REVOKED when the signer's own claimed signing-time is at or after the
// revocation (the signer says it signed under a revoked certificate),
// else INDETERMINATE, REVOKED_NO_POE (REVOKED_CA_NO_POE for a CA), with
// or without a proof of existence after the revocation: the signature may
// have been made while the certificate was good, nothing proves it (EN 319
// 102-1: a best-signature-time not before the revocation time leaves the
// signature INDETERMINATE). Neither is an unknown status: revocation
// "prefer" leaves it INDETERMINATE.
func (r *engineRevocation) signatureRevocation(st revStatus, c *x509.Certificate, ca bool) *finding {
	when, what := st.when, "revoked on"
	if st.reason == reasonKeyCompromise && !st.compromised.IsZero() && st.compromised.Before(when) {
		when, what = st.compromised, fmt.Sprintf("revoked on %s for keyCompromise, its key compromised since", st.when.UTC().Format(time.RFC3339))
	}
	if when.After(r.at) {
		return nil
	}
	code, subject, good := CodeRevokedNoPOE, fmt.Sprintf("%q", c.Subject.String()), "the certificate was good"
	if ca {
		code, subject, good = CodeRevokedCANoPOE, fmt.Sprintf("the CA %q of the signing certificate's path", c.Subject.String()), "the CA was good"
	}
	head := fmt.Sprintf("%s was %s %s (reason %d)", subject, what, when.UTC().Format(time.RFC3339), st.reason)
	switch {
	case !r.sig.Claimed.IsZero() && !r.sig.Claimed.Before(when):
		return &finding{Invalid, CodeRevoked, fmt.Sprintf("%s; the signer claims to have signed at %s, after it", head, r.sig.Claimed.UTC().Format(time.RFC3339))}
	case r.sig.POE:
		return &finding{Indeterminate, code, fmt.Sprintf("%s, and the signature's earliest proof of existence is at %s, after it: nothing proves the signature existed while %s", head, r.at.UTC().Format(time.RFC3339), good)}
	}
	return &finding{Indeterminate, code, fmt.Sprintf("%s, and nothing proves the signature existed while %s: a signature time-stamp (CAdES-T) made when signing would", head, good)}
}

// ocspRules are the policy's OCSP rules; a delegated responder without
// id-pkix-ocsp-nocheck is checked now against the CRLs at hand (the
// policy's, the caller's, fetched ones when the policy fetches).
func (r *engineRevocation) ocspRules() *ocspRules {
	return &ocspRules{maxAge: r.p.OCSPMaxAge, tol: r.p.ClockTolerance, noNonce: r.p.OCSPNoNonce, now: r.now,
		responderStatus: func(responder, issuer *x509.Certificate) string {
			crls := append(slices.Clone(r.p.CRLs), r.extra...)
			if r.p.FetchCRLs && r.e.Fetcher != nil {
				crls = append(crls, r.e.Fetcher.CRLsFor(r.ctx, responder)...)
			}
			k := &crlChecker{crls: crls, at: r.now, now: r.now, tol: r.p.ClockTolerance, opts: r.opts}
			st := k.check(&Path{Anchor: issuer, Certs: []*x509.Certificate{responder}}, 0)
			if st.revoked {
				return "revoked"
			}
			return st.unknown
		}}
}
