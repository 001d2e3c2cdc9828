package policy

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Qualification is what a signature made with a certificate is, in the
// terms of eIDAS (ETSI TS 119 615, EN 319 102-1): a qualified electronic
// signature or seal, an advanced one with a qualified certificate, or an
// advanced one.
type Qualification string

// Qualifications.
const (
	QES    Qualification = "QES"     // qualified certificate, key in a QSCD
	AdESQC Qualification = "AdES-QC" // qualified certificate, no QSCD claim
	AdES   Qualification = "AdES"    // not a qualified certificate
)

var (
	oidQCStatements = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}
	oidQcCompliance = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}
	oidQcSSCD       = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4}
	oidQcType       = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6}
)

// QC type names (EN 319 412-5 4.2.3).
var qcTypes = map[string]string{
	"0.4.0.1862.1.6.1": "esign",
	"0.4.0.1862.1.6.2": "eseal",
	"0.4.0.1862.1.6.3": "web",
}

// Qualified certificate policies: EN 319 411-2 (QCP-n, QCP-l, QCP-n-qscd,
// QCP-l-qscd, QCP-w) and the earlier TS 101 456 ones still found on
// certificates issued before eIDAS.
var qualifiedPolicies = map[string]struct{ qscd bool }{
	"0.4.0.194112.1.0": {false}, // QCP-n
	"0.4.0.194112.1.1": {false}, // QCP-l
	"0.4.0.194112.1.2": {true},  // QCP-n-qscd
	"0.4.0.194112.1.3": {true},  // QCP-l-qscd
	"0.4.0.194112.1.4": {false}, // QCP-w
	"0.4.0.1456.1.1":   {true},  // QCP public + SSCD
	"0.4.0.1456.1.2":   {false}, // QCP public
}

// QCInfo is what a certificate says about itself being qualified.
type QCInfo struct {
	Compliance bool     // QcCompliance statement
	SSCD       bool     // QcSSCD statement (key in a QSCD)
	Types      []string // QcType: esign, eseal, web
	// QualifiedPolicies are the certificate's qualified policy OIDs.
	QualifiedPolicies []string
}

// ErrMalformedQC is returned for an unreadable QCStatements extension.
var ErrMalformedQC = errors.New("policy: malformed QCStatements extension")

// ParseQC reads the QCStatements extension (RFC 3739, EN 319 412-5) and the
// qualified certificate policies of c.
func ParseQC(c *x509.Certificate) (QCInfo, error) {
	var q QCInfo
	for _, p := range c.Policies {
		s := p.String()
		if qp, ok := qualifiedPolicies[s]; ok {
			q.QualifiedPolicies = append(q.QualifiedPolicies, s)
			if qp.qscd {
				q.SSCD = true
			}
		}
	}
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidQCStatements) {
			continue
		}
		s := cryptobyte.String(e.Value)
		var seq cryptobyte.String
		if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() {
			return q, ErrMalformedQC
		}
		for n := 0; !seq.Empty(); n++ {
			var st cryptobyte.String
			var id asn1.ObjectIdentifier
			if n > 64 || !seq.ReadASN1(&st, cbasn1.SEQUENCE) || !st.ReadASN1ObjectIdentifier(&id) {
				return q, ErrMalformedQC
			}
			switch {
			case id.Equal(oidQcCompliance):
				q.Compliance = true
			case id.Equal(oidQcSSCD):
				q.SSCD = true
			case id.Equal(oidQcType):
				var types cryptobyte.String
				if !st.ReadASN1(&types, cbasn1.SEQUENCE) {
					return q, ErrMalformedQC
				}
				for !types.Empty() {
					var t asn1.ObjectIdentifier
					if !types.ReadASN1ObjectIdentifier(&t) {
						return q, ErrMalformedQC
					}
					if name, ok := qcTypes[t.String()]; ok && !slices.Contains(q.Types, name) {
						q.Types = append(q.Types, name)
					}
				}
			}
		}
	}
	return q, nil
}

// Qualified reports whether the certificate claims to be qualified.
func (q QCInfo) Qualified() bool { return q.Compliance || len(q.QualifiedPolicies) > 0 }

// Qualification derives the qualification of a signature from the
// certificate's claims. The caller must also know that the issuer is a
// qualified trust service (a trusted list) for QES or AdES-QC to hold.
func (q QCInfo) Qualification() Qualification {
	switch {
	case !q.Qualified():
		return AdES
	case slices.Contains(q.Types, "web"):
		return AdESQC // a website certificate never makes a qualified signature
	case q.SSCD:
		return QES
	}
	return AdESQC
}

// Has reports whether the certificate carries a named statement:
// compliance, sscd, esign, eseal or web.
func (q QCInfo) Has(name string) bool {
	switch name {
	case "compliance":
		return q.Compliance
	case "sscd":
		return q.SSCD
	}
	return slices.Contains(q.Types, name)
}

// QCStatementNames are the names Has and config accept.
var QCStatementNames = []string{"compliance", "sscd", "esign", "eseal", "web"}
