package policy

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Bounds on path building. A path is leaf to anchor; Czech qualified
// chains have three or four certificates, PKITS at most eight.
const (
	DefaultMaxDepth = 10
	// DefaultMaxSignatureChecks bounds the signatures verified while
	// building one path (cross-certificate meshes multiply candidates).
	DefaultMaxSignatureChecks = 256
	// DefaultMaxPaths bounds the complete candidate paths validated.
	DefaultMaxPaths = 32
	// maxPoolCertificates bounds the intermediates considered at all.
	maxPoolCertificates = 2048
)

// PathOptions are the inputs of RFC 5280 section 6.1.1 and the bounds.
type PathOptions struct {
	Anchors       []*x509.Certificate
	Intermediates []*x509.Certificate
	At            time.Time
	// InitialPolicies is user-initial-policy-set (dotted OIDs); empty means
	// any-policy.
	InitialPolicies      []string
	ExplicitPolicy       bool
	PolicyMappingInhibit bool
	AnyPolicyInhibit     bool
	// ClockTolerance widens every validity period at both ends.
	ClockTolerance time.Duration

	MaxDepth           int
	MaxSignatureChecks int
	MaxPaths           int
	// Budget is the work budget of the whole call, shared with CRL
	// signers' paths; nil means unbounded except by the bounds above.
	Budget *Budget
}

// Path is a validated (or failed) certification path.
type Path struct {
	Anchor *x509.Certificate
	// Certs runs from the certificate the anchor issued down to the leaf
	// (RFC 5280 order: certs[0] is issued by the anchor).
	Certs []*x509.Certificate
	// Policies are the leaf's valid policies after validation (the
	// authorities- and user-constrained policy set); nil when any-policy
	// or when the tree is NULL.
	Policies []string
}

// Chain returns the path leaf first, anchor last.
func (p *Path) Chain() []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(p.Certs)+1)
	for i := len(p.Certs) - 1; i >= 0; i-- {
		out = append(out, p.Certs[i])
	}
	if p.Anchor != nil && (len(p.Certs) == 0 || p.Anchor != p.Certs[len(p.Certs)-1]) {
		out = append(out, p.Anchor)
	}
	return out
}

type finding struct {
	status Status
	code   Code
	msg    string
}

type sigKey struct{ child, parent *x509.Certificate }

// builder finds candidate paths from a leaf to an anchor.
type builder struct {
	opts      PathOptions
	anchors   map[string][]*x509.Certificate
	pool      map[string][]*x509.Certificate
	sigs      map[sigKey]error
	sigChecks int
	exhausted bool
	// stop is set when the call's budget or context ran out: the build
	// ends at once and findPath reports it.
	stop    error
	sigFail *finding
}

func newBuilder(o PathOptions) *builder {
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxSignatureChecks <= 0 {
		o.MaxSignatureChecks = DefaultMaxSignatureChecks
	}
	if o.MaxPaths <= 0 {
		o.MaxPaths = DefaultMaxPaths
	}
	b := &builder{opts: o, anchors: map[string][]*x509.Certificate{}, pool: map[string][]*x509.Certificate{}, sigs: map[sigKey]error{}}
	for _, a := range o.Anchors {
		if a != nil {
			k := nameKey(a.RawSubject)
			b.anchors[k] = append(b.anchors[k], a)
		}
	}
	seen := map[string]bool{}
	n := 0
	for _, c := range o.Intermediates {
		if c == nil || seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		if n++; n > maxPoolCertificates {
			b.exhausted = true
			break
		}
		k := nameKey(c.RawSubject)
		b.pool[k] = append(b.pool[k], c)
	}
	return b
}

// checkSig verifies child's signature with parent's key, once per pair and
// within the work bound.
func (b *builder) checkSig(child, parent *x509.Certificate) error {
	k := sigKey{child, parent}
	if err, ok := b.sigs[k]; ok {
		return err
	}
	if b.sigChecks >= b.opts.MaxSignatureChecks {
		b.exhausted = true
		return errWorkBound
	}
	b.sigChecks++
	// The call's budget caches the check across paths, CRL signers'
	// paths and time-stamps, and refuses oversized RSA keys.
	err := b.opts.Budget.CheckSignature(parent, child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	if IsStop(err) {
		b.stop = err
		return errWorkBound
	}
	b.sigs[k] = err
	return err
}

// sigFinding describes a signature that did not verify, or was not
// verified because the key is too large.
func sigFinding(child, parent *x509.Certificate, err error) *finding {
	if errors.Is(err, ErrKeyTooLarge) {
		return &finding{Invalid, CodeWeakAlgorithm, fmt.Sprintf("the signature of %q was not verified: the key of %q is an RSA key of more than %d bits", child.Subject, parent.Subject, MaxRSAModulusBits)}
	}
	return &finding{Invalid, CodeSignatureMismatch, fmt.Sprintf("the signature of %q does not verify with the key of %q: %v", child.Subject, parent.Subject, err)}
}

var errWorkBound = fmt.Errorf("path building stopped at its work bound")

// candidates lists possible issuers of c: those whose key identifier
// matches and that are valid at the time first.
func (b *builder) candidates(m map[string][]*x509.Certificate, c *x509.Certificate) []*x509.Certificate {
	list := slices.Clone(m[nameKey(c.RawIssuer)])
	score := func(p *x509.Certificate) int {
		s := 0
		if len(c.AuthorityKeyId) > 0 && len(p.SubjectKeyId) > 0 {
			if bytes.Equal(c.AuthorityKeyId, p.SubjectKeyId) {
				s -= 2
			} else {
				s += 2
			}
		}
		if b.opts.At.Before(p.NotBefore) || b.opts.At.After(p.NotAfter) {
			s++
		}
		return s
	}
	slices.SortStableFunc(list, func(x, y *x509.Certificate) int { return score(x) - score(y) })
	return list
}

// build calls try for each candidate path (anchor, certs leaf first) until
// try returns true or the bounds are reached.
func (b *builder) build(leaf *x509.Certificate, try func(anchor *x509.Certificate, chain []*x509.Certificate) bool) {
	paths := 0
	var walk func(chain []*x509.Certificate) bool
	walk = func(chain []*x509.Certificate) bool {
		top := chain[len(chain)-1]
		for _, a := range b.candidates(b.anchors, top) {
			if b.step() {
				return true
			}
			if err := b.checkSig(top, a); err != nil {
				if b.stop != nil {
					return true
				}
				if !errors.Is(err, errWorkBound) && b.sigFail == nil {
					b.sigFail = sigFinding(top, a, err)
				}
				continue
			}
			if err := b.opts.Budget.Path(); err != nil {
				b.stop = err
				return true
			}
			paths++
			if try(a, chain) || paths >= b.opts.MaxPaths {
				return true
			}
			if b.stop = b.opts.Budget.Err(); b.stop != nil {
				return true // the revocation checks of the path used it up
			}
		}
		if len(chain) >= b.opts.MaxDepth {
			b.exhausted = true
			return false
		}
		for _, p := range b.candidates(b.pool, top) {
			// Every edge considered is charged: checked signatures are
			// cached, but a mesh of cross-certificates has exponentially
			// many simple paths through them.
			if b.step() {
				return true
			}
			if slices.ContainsFunc(chain, func(x *x509.Certificate) bool { return bytes.Equal(x.Raw, p.Raw) }) {
				continue // loops of cross-certificates
			}
			if err := b.checkSig(top, p); err != nil {
				if errors.Is(err, errWorkBound) {
					return true
				}
				if b.sigFail == nil {
					b.sigFail = sigFinding(top, p, err)
				}
				continue
			}
			if walk(append(chain, p)) {
				return true
			}
		}
		return false
	}
	walk([]*x509.Certificate{leaf})
}

// step charges one candidate edge to the call's budget; true means stop.
func (b *builder) step() bool {
	if b.stop != nil {
		return true
	}
	if err := b.opts.Budget.Step(); err != nil {
		b.stop = err
		return true
	}
	return false
}

// revocationFunc checks certs[i] of a path whose earlier certificates are
// already validated; it returns nil when the status is good.
type revocationFunc func(p *Path, i int) *finding

// validatePath runs RFC 5280 6.1.2 to 6.1.5 on a built path. Signatures were
// checked while building.
func validatePath(o PathOptions, anchor *x509.Certificate, certs []*x509.Certificate) (*Path, []finding) {
	var out []finding
	fail := func(s Status, c Code, format string, a ...any) {
		out = append(out, finding{s, c, fmt.Sprintf(format, a...)})
	}
	n := len(certs)
	tree := newPolicyTree()
	nc := newNameConstraints()
	explicit, anyInhibit, mapping := n+1, n+1, n+1
	if o.ExplicitPolicy {
		explicit = 0
	}
	if o.AnyPolicyInhibit {
		anyInhibit = 0
	}
	if o.PolicyMappingInhibit {
		mapping = 0
	}
	maxPathLen := n
	workingIssuer := nameKey(anchor.RawSubject)
	tol := o.ClockTolerance
	for idx, c := range certs {
		i := idx + 1
		last := i == n
		who := fmt.Sprintf("%q", c.Subject.String())
		// (a) validity and name chaining.
		if o.At.Add(tol).Before(c.NotBefore) {
			fail(Invalid, CodeNotYetValid, "%s is not valid before %s", who, c.NotBefore.UTC().Format(time.RFC3339))
		}
		if o.At.Add(-tol).After(c.NotAfter) {
			fail(Invalid, CodeExpired, "%s expired on %s", who, c.NotAfter.UTC().Format(time.RFC3339))
		}
		if nameKey(c.RawIssuer) != workingIssuer {
			fail(Invalid, CodeChainInvalid, "%s: issuer name does not chain", who)
		}
		selfIssued := nameKey(c.RawIssuer) == nameKey(c.RawSubject)
		// (b), (c) name constraints.
		if !(selfIssued && !last) {
			subj, emails, err := parseDN(c.RawSubject)
			sans, err2 := subjectAltNames(c)
			if err != nil || err2 != nil {
				fail(Invalid, CodeMalformed, "%s: malformed subject or subjectAltName", who)
			} else if msg := nc.check(subj, emails, sans); msg != "" {
				fail(Invalid, CodeNameConstraints, "%s: %s", who, msg)
			}
		}
		// (d), (e), (f) policies.
		if tree != nil {
			if len(c.Policies) > 0 {
				pols := make([]string, 0, len(c.Policies))
				for _, p := range c.Policies {
					pols = append(pols, p.String())
				}
				if !tree.processCertPolicies(i, pols, anyInhibit > 0 || (!last && selfIssued)) {
					tree = nil
				}
			} else {
				tree = nil
			}
		}
		if tree == nil && explicit <= 0 {
			fail(Invalid, CodePolicy, "%s: no acceptable certificate policy (explicit policy required)", who)
			return nil, out
		}
		if last {
			break
		}
		// 6.1.4: prepare for the next certificate.
		if len(c.PolicyMappings) > 0 {
			m := map[string][]string{}
			var order []string
			for _, pm := range c.PolicyMappings {
				idp, sdp := pm.IssuerDomainPolicy.String(), pm.SubjectDomainPolicy.String()
				if idp == anyPolicy || sdp == anyPolicy {
					fail(Invalid, CodePolicy, "%s maps anyPolicy", who)
					return nil, out
				}
				if _, ok := m[idp]; !ok {
					order = append(order, idp)
				}
				m[idp] = append(m[idp], sdp)
			}
			if tree != nil && !tree.applyMappings(i, m, order, mapping > 0) {
				tree = nil
			}
		}
		workingIssuer = nameKey(c.RawSubject)
		permitted, excluded, _, err := nameConstraintsExt(c)
		if err != nil {
			fail(Invalid, CodeMalformed, "%s: malformed name constraints", who)
		}
		nc.add(permitted, excluded)
		if !selfIssued {
			explicit, mapping, anyInhibit = dec(explicit), dec(mapping), dec(anyInhibit)
		}
		if c.RequireExplicitPolicy > 0 || c.RequireExplicitPolicyZero {
			explicit = min(explicit, c.RequireExplicitPolicy)
		}
		if c.InhibitPolicyMapping > 0 || c.InhibitPolicyMappingZero {
			mapping = min(mapping, c.InhibitPolicyMapping)
		}
		if c.InhibitAnyPolicy > 0 || c.InhibitAnyPolicyZero {
			anyInhibit = min(anyInhibit, c.InhibitAnyPolicy)
		}
		// (k) basic constraints.
		if !c.BasicConstraintsValid || !c.IsCA {
			fail(Invalid, CodeChainInvalid, "%s is not a CA certificate (basic constraints)", who)
			return nil, out
		}
		// (l), (m) path length.
		if !selfIssued {
			if maxPathLen <= 0 {
				fail(Invalid, CodeChainInvalid, "%s: the path is longer than a pathLenConstraint allows", who)
				return nil, out
			}
			maxPathLen--
		}
		if c.MaxPathLen > 0 || c.MaxPathLenZero {
			maxPathLen = min(maxPathLen, c.MaxPathLen)
		}
		// (n) key usage.
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
			fail(Invalid, CodeKeyUsage, "%s may not sign certificates (key usage)", who)
		}
		// (o) critical extensions.
		if msg := unhandledCritical(c); msg != "" {
			fail(Invalid, CodeUnknownCriticalExtension, "%s: %s", who, msg)
		}
	}
	// 6.1.5 wrap-up.
	leaf := certs[n-1]
	explicit = dec(explicit)
	if leaf.RequireExplicitPolicyZero {
		explicit = 0
	}
	if msg := unhandledCritical(leaf); msg != "" {
		fail(Invalid, CodeUnknownCriticalExtension, "%q: %s", leaf.Subject.String(), msg)
	}
	p := &Path{Anchor: anchor, Certs: certs}
	initial := map[string]bool{}
	for _, q := range o.InitialPolicies {
		if q != anyPolicy {
			initial[q] = true
		}
	}
	isAny := len(initial) == 0 || slices.Contains(o.InitialPolicies, anyPolicy)
	if tree != nil && !isAny {
		if !tree.intersect(initial) {
			tree = nil
		}
	}
	if tree != nil {
		p.Policies = tree.leafPolicies()
	}
	if tree == nil && explicit <= 0 {
		fail(Invalid, CodePolicy, "no acceptable certificate policy for the path")
	}
	return p, out
}

func dec(v int) int {
	if v > 0 {
		return v - 1
	}
	return v
}

// unhandledCritical names a critical extension neither crypto/x509 nor this
// package processes.
func unhandledCritical(c *x509.Certificate) string {
	for _, oid := range c.UnhandledCriticalExtensions {
		if oid.Equal(oidExtNameConstraints) || oid.Equal(oidExtSubjectAltName) {
			continue // handled here
		}
		return fmt.Sprintf("unknown critical extension %s", oid)
	}
	return ""
}

// findPath builds candidate paths for leaf and returns the first that
// validates (with revocation when rev is set) or the findings of the first
// one that failed.
func findPath(leaf *x509.Certificate, o PathOptions, rev revocationChecker) (*Path, []finding) {
	for _, a := range o.Anchors {
		if a != nil && bytes.Equal(a.Raw, leaf.Raw) {
			// The certificate is itself an anchor (RFC 5280: any
			// certificate may be one); only its validity period applies.
			var f []finding
			if o.At.Add(o.ClockTolerance).Before(leaf.NotBefore) {
				f = append(f, finding{Invalid, CodeNotYetValid, "the certificate is not yet valid"})
			}
			if o.At.Add(-o.ClockTolerance).After(leaf.NotAfter) {
				f = append(f, finding{Invalid, CodeExpired, "the certificate has expired"})
			}
			return &Path{Anchor: a}, f
		}
	}
	b := newBuilder(o)
	var good, first *Path
	var firstF []finding
	b.build(leaf, func(anchor *x509.Certificate, chain []*x509.Certificate) bool {
		certs := make([]*x509.Certificate, len(chain))
		for i, c := range chain {
			certs[len(chain)-1-i] = c
		}
		p, f := validatePath(o, anchor, certs)
		if len(f) == 0 && rev != nil {
			for i := range certs {
				if r := rev.revocation(p, i); r != nil {
					f = append(f, *r)
					if r.status == Invalid {
						break
					}
				}
				if b.stop = o.Budget.Err(); b.stop != nil {
					return true // a status cut short is no status
				}
			}
		}
		if len(f) == 0 || onlyWarnings(f) {
			good, firstF = p, f
			return true
		}
		if first == nil {
			if p == nil {
				p = &Path{Anchor: anchor, Certs: certs}
			}
			first, firstF = p, f
		}
		return false
	})
	if good != nil {
		return good, firstF
	}
	if b.stop != nil {
		// Out of budget or time: what was found so far says nothing about
		// the paths not tried.
		return nil, []finding{stopFinding(b.stop)}
	}
	if first != nil {
		return first, firstF
	}
	switch {
	case b.sigFail != nil:
		return nil, []finding{*b.sigFail}
	case b.exhausted:
		return nil, []finding{{Indeterminate, CodePathBound, "no path to a trust anchor within the path building bounds (depth, signature checks, candidate count)"}}
	}
	return nil, []finding{{Indeterminate, CodeUntrustedRoot, fmt.Sprintf("no path from %q to a trust anchor", leaf.Subject.String())}}
}

// stopFinding reports a validation stopped by the work budget or the
// call's deadline.
func stopFinding(err error) finding {
	if errors.Is(err, ErrWorkBudget) {
		return finding{Indeterminate, CodePathBound, fmt.Sprintf("validation stopped at the per-call work budget (%s): send only the signer's chain, or configure anchors, intermediates and CRLs in a server-side policy", budgetDetail(err))}
	}
	return finding{Indeterminate, CodePathBound, "validation stopped: the call's deadline passed or it was cancelled"}
}

func onlyWarnings(f []finding) bool {
	for _, x := range f {
		if x.status != Valid {
			return false
		}
	}
	return true
}

// revocationChecker gives the revocation finding for p.Certs[i], nil when
// it is good.
type revocationChecker interface {
	revocation(p *Path, i int) *finding
}
