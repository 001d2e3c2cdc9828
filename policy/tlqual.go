package policy

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/pecet-hsm/pecet/xmldsig"
)

// Service-information qualifiers (ETSI TS 119 612 5.5.9.2, TS 119 615
// 4.3): a CA/QC service of a trusted list may say, for the certificates
// matching a criteria list, what they are regardless of what they say
// themselves (docs/security.md "Trusted lists").

const (
	nsECC       = "http://uri.etsi.org/TrstSvc/SvcInfoExt/eSigDir-1999-93-EC-TrustedList/#"
	nsXAdES     = "http://uri.etsi.org/01903/v1.3.2#"
	qualifierNS = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/"
)

// Bounds on what a list may ask pecet to evaluate per service.
const (
	maxQualificationElements = 64
	maxCriteriaDepth         = 4
	maxCriteria              = 256
)

// QualificationElement is one Qualifications/QualificationElement: its
// qualifiers (short names such as "QCWithSSCD", "NotQualified") apply to
// the certificates matching Criteria.
type QualificationElement struct {
	Qualifiers []string
	Criteria   Criteria
}

// Criteria is a CriteriaList. Assert is "all", "atLeastOne" or "none".
// Criteria pecet does not evaluate (OtherCriteriaList: extended key
// usage, subject attributes) are kept as Unsupported and never count as
// met, so an element that depends on them does not apply unless its
// other criteria decide it.
type Criteria struct {
	Assert string
	// PolicySets: each set is met when the certificate has every policy
	// OID of it.
	PolicySets [][]string
	// KeyUsages: each is met when every named bit has the stated value.
	KeyUsages   []map[string]bool
	Sub         []Criteria
	Unsupported []string
}

var keyUsageBits = map[string]x509.KeyUsage{
	"digitalSignature": x509.KeyUsageDigitalSignature,
	"nonRepudiation":   x509.KeyUsageContentCommitment,
	"keyEncipherment":  x509.KeyUsageKeyEncipherment,
	"dataEncipherment": x509.KeyUsageDataEncipherment,
	"keyAgreement":     x509.KeyUsageKeyAgreement,
	"keyCertSign":      x509.KeyUsageCertSign,
	"crlSign":          x509.KeyUsageCRLSign,
	"encipherOnly":     x509.KeyUsageEncipherOnly,
	"decipherOnly":     x509.KeyUsageDecipherOnly,
}

// readQualifications reads the Qualifications extensions under a
// ServiceInformation or ServiceHistoryInstance.
func readQualifications(n *xmldsig.Node, service string) ([]QualificationElement, error) {
	exts := n.Child(nsTSL, "ServiceInformationExtensions")
	if exts == nil {
		return nil, nil
	}
	var out []QualificationElement
	for _, ext := range exts.ChildrenNamed(nsTSL, "Extension") {
		q := ext.Child(nsECC, "Qualifications")
		if q == nil {
			continue
		}
		for _, el := range q.ChildrenNamed(nsECC, "QualificationElement") {
			if len(out) == maxQualificationElements {
				return nil, fmt.Errorf("%w: service %q has more than %d qualification elements", ErrTrustedList, service, maxQualificationElements)
			}
			var e QualificationElement
			if qs := el.Child(nsECC, "Qualifiers"); qs != nil {
				for _, x := range qs.ChildrenNamed(nsECC, "Qualifier") {
					uri, _ := x.Attr("uri")
					e.Qualifiers = append(e.Qualifiers, strings.TrimPrefix(strings.TrimSpace(uri), qualifierNS))
				}
			}
			cl := el.Child(nsECC, "CriteriaList")
			if cl == nil {
				return nil, fmt.Errorf("%w: a qualification element of service %q has no CriteriaList", ErrTrustedList, service)
			}
			count := 0
			c, err := readCriteria(cl, 0, &count)
			if err != nil {
				return nil, fmt.Errorf("%w: service %q: %w", ErrTrustedList, service, err)
			}
			e.Criteria = c
			out = append(out, e)
		}
	}
	return out, nil
}

func readCriteria(n *xmldsig.Node, depth int, count *int) (Criteria, error) {
	if depth > maxCriteriaDepth {
		return Criteria{}, fmt.Errorf("criteria lists nested deeper than %d", maxCriteriaDepth)
	}
	c := Criteria{}
	c.Assert, _ = n.Attr("assert")
	switch c.Assert {
	case "all", "atLeastOne", "none":
	default:
		return c, fmt.Errorf("criteria list assert %q (all, atLeastOne or none)", c.Assert)
	}
	for _, e := range n.Elements() {
		if *count++; *count > maxCriteria {
			return c, fmt.Errorf("more than %d criteria", maxCriteria)
		}
		switch {
		case e.Space() == nsECC && e.Local() == "PolicySet":
			var set []string
			for _, pi := range e.ChildrenNamed(nsECC, "PolicyIdentifier") {
				id := strings.TrimSpace(pi.Child(nsXAdES, "Identifier").Text())
				// An OID may be written as a URN (RFC 3061).
				set = append(set, strings.TrimPrefix(strings.ToLower(id), "urn:oid:"))
			}
			if len(set) == 0 {
				return c, fmt.Errorf("an empty PolicySet")
			}
			c.PolicySets = append(c.PolicySets, set)
		case e.Space() == nsECC && e.Local() == "KeyUsage":
			ku := map[string]bool{}
			for _, b := range e.ChildrenNamed(nsECC, "KeyUsageBit") {
				name, _ := b.Attr("name")
				if _, ok := keyUsageBits[name]; !ok {
					return c, fmt.Errorf("unknown KeyUsageBit %q", name)
				}
				ku[name] = strings.TrimSpace(b.Text()) == "true"
			}
			c.KeyUsages = append(c.KeyUsages, ku)
		case e.Space() == nsECC && e.Local() == "CriteriaList":
			sub, err := readCriteria(e, depth+1, count)
			if err != nil {
				return c, err
			}
			c.Sub = append(c.Sub, sub)
		case e.Local() == "Description":
		default:
			c.Unsupported = append(c.Unsupported, e.Local())
		}
	}
	return c, nil
}

// Matches reports whether cert meets the criteria. An unsupported
// criterion is never met.
func (c Criteria) Matches(cert *x509.Certificate) bool {
	var results []bool
	for _, set := range c.PolicySets {
		ok := true
		for _, oid := range set {
			if !slices.ContainsFunc(cert.Policies, func(p x509.OID) bool { return p.String() == oid }) {
				ok = false
			}
		}
		results = append(results, ok)
	}
	for _, ku := range c.KeyUsages {
		ok := true
		for name, want := range ku {
			if (cert.KeyUsage&keyUsageBits[name] != 0) != want {
				ok = false
			}
		}
		results = append(results, ok)
	}
	for _, s := range c.Sub {
		results = append(results, s.Matches(cert))
	}
	for range c.Unsupported {
		results = append(results, false)
	}
	switch c.Assert {
	case "all":
		return len(results) > 0 && !slices.Contains(results, false)
	case "atLeastOne":
		return slices.Contains(results, true)
	case "none":
		// An unsupported criterion cannot be shown unmet.
		return len(c.Unsupported) == 0 && !slices.Contains(results, true)
	}
	return false
}

// qualifyByList applies the qualifiers of the elements cert matches to
// what the certificate says of itself (TS 119 615 4.3.4): NotQualified
// wins over everything; QCStatement makes it qualified; QCWithSSCD,
// QCWithQSCD and QCQSCDManagedOnBehalf put its key in a QSCD, QCNoSSCD and
// QCNoQSCD take it out (both at once: out); QCForESig, QCForESeal and
// QCForWSA replace its QC types. It returns the qualification, whether
// the list says "not qualified", and the qualifiers that applied.
func qualifyByList(cert *x509.Certificate, q QCInfo, elems []QualificationElement) (Qualification, bool, []string) {
	var applied []string
	for _, e := range elems {
		if e.Criteria.Matches(cert) {
			for _, x := range e.Qualifiers {
				if !slices.Contains(applied, x) {
					applied = append(applied, x)
				}
			}
		}
	}
	has := func(names ...string) bool {
		return slices.ContainsFunc(applied, func(a string) bool { return slices.Contains(names, a) })
	}
	if has("NotQualified") {
		return AdES, true, applied
	}
	q.Types = slices.Clone(q.Types)
	if has("QCStatement") {
		q.Compliance = true
	}
	if has("QCWithSSCD", "QCWithQSCD", "QCQSCDManagedOnBehalf") {
		q.SSCD = true
	}
	if has("QCNoSSCD", "QCNoQSCD") {
		q.SSCD = false
	}
	if has("QCForESig", "QCForESeal", "QCForWSA") {
		q.Types = nil
		for name, t := range map[string]string{"QCForESig": "esign", "QCForESeal": "eseal", "QCForWSA": "web"} {
			if has(name) {
				q.Types = append(q.Types, t)
			}
		}
	}
	return q.Qualification(), false, applied
}
