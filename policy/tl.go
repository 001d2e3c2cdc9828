package policy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/xmldsig"
)

// Errors of trusted-list loading.
var (
	ErrTrustedListTooLarge = errors.New("policy: trusted list too large")
	ErrTrustedListSig      = errors.New("policy: trusted list signature invalid")
	ErrTrustedList         = errors.New("policy: malformed trusted list")
	// ErrMalformedXML is xmldsig.ErrMalformedXML: the document is not XML
	// the parser takes (a DOCTYPE, too deep, too many elements).
	ErrMalformedXML = xmldsig.ErrMalformedXML
)

// MaxTrustedListBytes bounds a trusted list file; the Czech list is 640 kB,
// the largest national lists a few MB. Checked before parsing.
const MaxTrustedListBytes = 16 << 20

const (
	nsTSL   = "http://uri.etsi.org/02231/v2#"
	svcCAQC = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
	// svcTSAQTST is a qualified time-stamping service; its digital
	// identity is the TSU certificate.
	svcTSAQTST = "http://uri.etsi.org/TrstSvc/Svctype/TSA/QTST"
)

// grantedStatuses are the service statuses under which a CA/QC service
// issues qualified certificates: "granted" since eIDAS (1 July 2016), and
// the directive 1999/93/EC statuses before it.
var grantedStatuses = []string{
	"http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted",
	"http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/undersupervision",
	"http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/supervisionincessation",
	"http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/accredited",
}

// TrustedList is an ETSI TS 119 612 trusted list whose signature verified.
type TrustedList struct {
	Territory      string
	SequenceNumber string
	Operator       string
	IssueDate      time.Time
	NextUpdate     time.Time
	Services       []TrustService
	// SHA256 is the digest of the document as loaded, for validation
	// reports (docs/api.md "Validation reports").
	SHA256 []byte
}

// TrustService is one service of a provider with its status history.
type TrustService struct {
	Provider string
	Name     string
	Type     string
	Certs    []*x509.Certificate
	// History is newest first: the current status, then the history
	// instances.
	History []ServiceStatus
}

// ServiceStatus is a status that holds from Start.
type ServiceStatus struct {
	Status string
	Start  time.Time
	// Qualifications are the service-information qualifiers in force
	// with this status (docs/security.md "Trusted lists").
	Qualifications []QualificationElement
}

// TrustedAnchor is a certificate of a granted CA/QC service.
type TrustedAnchor struct {
	Cert    *x509.Certificate
	Service string // "provider: service name"
	// Qualifications of the service's status at the time asked.
	Qualifications []QualificationElement
}

// StatusAt returns the service's status at t ("" before its first).
func (s TrustService) StatusAt(t time.Time) string { return s.statusAt(t).Status }

func (s TrustService) statusAt(t time.Time) ServiceStatus {
	for _, h := range s.History {
		if !h.Start.After(t) {
			return h
		}
	}
	return ServiceStatus{}
}

// AnchorsAt lists the certificates of CA/QC services granted at t.
func (l *TrustedList) AnchorsAt(t time.Time) []TrustedAnchor { return l.anchorsAt(svcCAQC, t) }

// TimestampAnchorsAt lists the TSU certificates of TSA/QTST services
// granted at t: anchors for time-stamping only (docs/security.md
// "Time-stamps").
func (l *TrustedList) TimestampAnchorsAt(t time.Time) []TrustedAnchor {
	return l.anchorsAt(svcTSAQTST, t)
}

func (l *TrustedList) anchorsAt(typ string, t time.Time) []TrustedAnchor {
	if l == nil {
		return nil
	}
	var out []TrustedAnchor
	for _, s := range l.Services {
		st := s.statusAt(t)
		if s.Type != typ || !slices.Contains(grantedStatuses, st.Status) {
			continue
		}
		for _, c := range s.Certs {
			out = append(out, TrustedAnchor{Cert: c, Service: s.Provider + ": " + s.Name, Qualifications: st.Qualifications})
		}
	}
	return out
}

// LoadTrustedList checks the size, parses the list, verifies its enveloped
// XMLDSig signature with signer's key and reads the services.
func LoadTrustedList(data []byte, signers []*x509.Certificate) (*TrustedList, error) {
	if len(data) > MaxTrustedListBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTrustedListTooLarge, len(data), MaxTrustedListBytes)
	}
	root, err := xmldsig.Parse(data)
	if err != nil {
		return nil, err
	}
	if root.Local() != "TrustServiceStatusList" || root.Space() != nsTSL {
		return nil, fmt.Errorf("%w: the document is not a TrustServiceStatusList", ErrTrustedList)
	}
	if err := verifyEnveloped(root, signers); err != nil {
		return nil, err
	}
	l, err := readTrustedList(root)
	if l != nil {
		sum := sha256.Sum256(data)
		l.SHA256 = sum[:]
	}
	return l, err
}

// verifyEnveloped checks the list's enveloped XMLDSig signature with
// signers; a failure is ErrTrustedListSig (and xmldsig.ErrSignature).
func verifyEnveloped(root *xmldsig.Node, signers []*x509.Certificate) error {
	if err := xmldsig.VerifyEnveloped(root, signers); err != nil {
		return fmt.Errorf("%w: %w", ErrTrustedListSig, err)
	}
	return nil
}

func readTrustedList(root *xmldsig.Node) (*TrustedList, error) {
	l := &TrustedList{}
	si := root.Child(nsTSL, "SchemeInformation")
	if si == nil {
		return nil, fmt.Errorf("%w: no SchemeInformation", ErrTrustedList)
	}
	l.Territory = strings.TrimSpace(si.Child(nsTSL, "SchemeTerritory").Text())
	l.SequenceNumber = strings.TrimSpace(si.Child(nsTSL, "TSLSequenceNumber").Text())
	l.Operator = firstName(si.Child(nsTSL, "SchemeOperatorName"))
	l.IssueDate, _ = time.Parse(time.RFC3339, strings.TrimSpace(si.Child(nsTSL, "ListIssueDateTime").Text()))
	if nu := si.Child(nsTSL, "NextUpdate"); nu != nil {
		l.NextUpdate, _ = time.Parse(time.RFC3339, strings.TrimSpace(nu.Child(nsTSL, "dateTime").Text()))
	}
	list := root.Child(nsTSL, "TrustServiceProviderList")
	if list == nil {
		return l, nil
	}
	for _, tsp := range list.ChildrenNamed(nsTSL, "TrustServiceProvider") {
		info := tsp.Child(nsTSL, "TSPInformation")
		provider := ""
		if info != nil {
			provider = firstName(info.Child(nsTSL, "TSPName"))
		}
		svcs := tsp.Child(nsTSL, "TSPServices")
		if svcs == nil {
			continue
		}
		for _, svc := range svcs.ChildrenNamed(nsTSL, "TSPService") {
			inf := svc.Child(nsTSL, "ServiceInformation")
			if inf == nil {
				return nil, fmt.Errorf("%w: a service of %q has no ServiceInformation", ErrTrustedList, provider)
			}
			s := TrustService{
				Provider: provider,
				Name:     firstName(inf.Child(nsTSL, "ServiceName")),
				Type:     strings.TrimSpace(inf.Child(nsTSL, "ServiceTypeIdentifier").Text()),
			}
			st, err := readStatus(inf, s.Name)
			if err != nil {
				return nil, err
			}
			s.History = append(s.History, st)
			if sdi := inf.Child(nsTSL, "ServiceDigitalIdentity"); sdi != nil {
				for _, di := range sdi.ChildrenNamed(nsTSL, "DigitalId") {
					if x := di.Child(nsTSL, "X509Certificate"); x != nil {
						der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(x.Text()), ""))
						if err != nil {
							return nil, fmt.Errorf("%w: certificate of %q: base64", ErrTrustedList, s.Name)
						}
						c, err := x509.ParseCertificate(der)
						if err != nil {
							return nil, fmt.Errorf("%w: certificate of %q: %w", ErrTrustedList, s.Name, err)
						}
						s.Certs = append(s.Certs, c)
					}
				}
			}
			if hist := svc.Child(nsTSL, "ServiceHistory"); hist != nil {
				for _, h := range hist.ChildrenNamed(nsTSL, "ServiceHistoryInstance") {
					st, err := readStatus(h, s.Name)
					if err != nil {
						return nil, err
					}
					s.History = append(s.History, st)
				}
			}
			slices.SortStableFunc(s.History, func(a, b ServiceStatus) int { return b.Start.Compare(a.Start) })
			l.Services = append(l.Services, s)
		}
	}
	return l, nil
}

func readStatus(n *xmldsig.Node, service string) (ServiceStatus, error) {
	st := ServiceStatus{Status: strings.TrimSpace(n.Child(nsTSL, "ServiceStatus").Text())}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(n.Child(nsTSL, "StatusStartingTime").Text()))
	if err != nil {
		return st, fmt.Errorf("%w: status starting time", ErrTrustedList)
	}
	st.Start = t
	st.Qualifications, err = readQualifications(n, service)
	return st, err
}

// firstName prefers the English name of a multilingual name list.
func firstName(n *xmldsig.Node) string {
	if n == nil {
		return ""
	}
	names := n.ChildrenNamed(nsTSL, "Name")
	for _, x := range names {
		if x.Lang() == "en" {
			return strings.TrimSpace(x.Text())
		}
	}
	if len(names) > 0 {
		return strings.TrimSpace(names[0].Text())
	}
	return ""
}

// TrustedListSigners returns the certificates in the list's own KeyInfo.
// They are NOT to be trusted by themselves: the signer certificate must come
// from configuration (the EU list of lists publishes each national list's).
func TrustedListSigners(data []byte) ([]*x509.Certificate, error) {
	if len(data) > MaxTrustedListBytes {
		return nil, ErrTrustedListTooLarge
	}
	root, err := xmldsig.Parse(data)
	if err != nil {
		return nil, err
	}
	return xmldsig.KeyInfoCertificates(root)
}
