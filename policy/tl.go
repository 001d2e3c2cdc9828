package policy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // registers SHA-384/512 for XMLDSig digests named by URI (crypto.Hash.New)
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// Errors of trusted-list loading.
var (
	ErrTrustedListTooLarge = errors.New("policy: trusted list too large")
	ErrTrustedListSig      = errors.New("policy: trusted list signature invalid")
	ErrTrustedList         = errors.New("policy: malformed trusted list")
)

// MaxTrustedListBytes bounds a trusted list file; the Czech list is 640 kB,
// the largest national lists a few MB. Checked before parsing.
const MaxTrustedListBytes = 16 << 20

const (
	nsTSL   = "http://uri.etsi.org/02231/v2#"
	nsDSig  = "http://www.w3.org/2000/09/xmldsig#"
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
	root, err := parseXMLTree(data)
	if err != nil {
		return nil, err
	}
	if root.local != "TrustServiceStatusList" || root.space() != nsTSL {
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

// verifyEnveloped checks the XMLDSig signature that is a child of root.
func verifyEnveloped(root *xnode, signers []*x509.Certificate) error {
	sigs := root.childrenNamed(nsDSig, "Signature")
	if len(sigs) != 1 {
		return fmt.Errorf("%w: want exactly one enveloped signature, found %d", ErrTrustedListSig, len(sigs))
	}
	sig := sigs[0]
	si := sig.child(nsDSig, "SignedInfo")
	if si == nil {
		return fmt.Errorf("%w: no SignedInfo", ErrTrustedListSig)
	}
	cm := si.child(nsDSig, "CanonicalizationMethod")
	if alg, _ := attrOf(cm, "Algorithm"); alg != "http://www.w3.org/2001/10/xml-exc-c14n#" {
		return fmt.Errorf("%w: canonicalization %q is not supported (exclusive C14N only)", ErrTrustedListSig, alg)
	}
	sm, _ := attrOf(si.child(nsDSig, "SignatureMethod"), "Algorithm")
	h, isRSA, isPSS, err := sigMethod(sm)
	if err != nil {
		return err
	}
	refs := si.childrenNamed(nsDSig, "Reference")
	if len(refs) == 0 || len(refs) > 8 {
		return fmt.Errorf("%w: %d references", ErrTrustedListSig, len(refs))
	}
	coversDocument := false
	for _, ref := range refs {
		uri, _ := ref.attr("URI")
		var target, skip *xnode
		switch {
		case uri == "":
			target, skip = root, sig
		case strings.HasPrefix(uri, "#"):
			target = findByID(root, uri[1:])
		}
		if target == nil {
			return fmt.Errorf("%w: reference %q not found", ErrTrustedListSig, uri)
		}
		if tr := ref.child(nsDSig, "Transforms"); tr != nil {
			for _, t := range tr.childrenNamed(nsDSig, "Transform") {
				alg, _ := t.attr("Algorithm")
				switch alg {
				case "http://www.w3.org/2000/09/xmldsig#enveloped-signature":
					if target != root {
						return fmt.Errorf("%w: enveloped transform on a fragment", ErrTrustedListSig)
					}
				case "http://www.w3.org/2001/10/xml-exc-c14n#":
				default:
					return fmt.Errorf("%w: transform %q is not supported", ErrTrustedListSig, alg)
				}
			}
		}
		dm, _ := attrOf(ref.child(nsDSig, "DigestMethod"), "Algorithm")
		dh, err := digestMethod(dm)
		if err != nil {
			return err
		}
		want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(textOf(ref.child(nsDSig, "DigestValue"))))
		if err != nil {
			return fmt.Errorf("%w: digest value", ErrTrustedListSig)
		}
		hh := dh.New()
		hh.Write(excC14N(target, skip))
		if subtle.ConstantTimeCompare(hh.Sum(nil), want) != 1 {
			return fmt.Errorf("%w: the digest of reference %q does not match (the list was changed)", ErrTrustedListSig, uri)
		}
		if target == root {
			coversDocument = true
		}
	}
	if !coversDocument {
		return fmt.Errorf("%w: no reference covers the whole list", ErrTrustedListSig)
	}
	sv, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(textOf(sig.child(nsDSig, "SignatureValue"))), ""))
	if err != nil {
		return fmt.Errorf("%w: signature value", ErrTrustedListSig)
	}
	hh := h.New()
	hh.Write(excC14N(si, nil))
	digest := hh.Sum(nil)
	for _, c := range signers {
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if isRSA && !isPSS && rsa.VerifyPKCS1v15(k, h, digest, sv) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if !isRSA && verifyXMLECDSA(k, digest, sv) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the signature does not verify with the configured signer certificate", ErrTrustedListSig)
}

// verifyXMLECDSA checks an XMLDSig ECDSA value (r || s, RFC 4050).
func verifyXMLECDSA(k *ecdsa.PublicKey, digest, sv []byte) bool {
	n := (k.Curve.Params().BitSize + 7) / 8
	if len(sv) != 2*n {
		return false
	}
	der, err := cms.ECDSARawToDER(sv)
	return err == nil && ecdsa.VerifyASN1(k, digest, der)
}

func sigMethod(alg string) (h crypto.Hash, isRSA, isPSS bool, err error) { //nolint:unparam // the caller verifies RSASSA-PSS when a method yields it; none is accepted yet
	switch alg {
	case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":
		return crypto.SHA256, true, false, nil
	case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384":
		return crypto.SHA384, true, false, nil
	case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":
		return crypto.SHA512, true, false, nil
	case "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256":
		return crypto.SHA256, false, false, nil
	case "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384":
		return crypto.SHA384, false, false, nil
	case "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512":
		return crypto.SHA512, false, false, nil
	}
	// rsa-sha1 is refused: SHA-1 is not suitable for signatures (TS 119 312).
	return 0, false, false, fmt.Errorf("%w: signature method %q is not supported", ErrTrustedListSig, alg)
}

func digestMethod(alg string) (crypto.Hash, error) {
	switch alg {
	case "http://www.w3.org/2001/04/xmlenc#sha256":
		return crypto.SHA256, nil
	case "http://www.w3.org/2001/04/xmldsig-more#sha384":
		return crypto.SHA384, nil
	case "http://www.w3.org/2001/04/xmlenc#sha512":
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: digest method %q is not supported", ErrTrustedListSig, alg)
}

func attrOf(n *xnode, name string) (string, bool) { //nolint:unparam // the same two results as xnode.attr
	if n == nil {
		return "", false
	}
	return n.attr(name)
}

func textOf(n *xnode) string {
	if n == nil {
		return ""
	}
	return n.text()
}

func readTrustedList(root *xnode) (*TrustedList, error) {
	l := &TrustedList{}
	si := root.child(nsTSL, "SchemeInformation")
	if si == nil {
		return nil, fmt.Errorf("%w: no SchemeInformation", ErrTrustedList)
	}
	l.Territory = strings.TrimSpace(textOf(si.child(nsTSL, "SchemeTerritory")))
	l.SequenceNumber = strings.TrimSpace(textOf(si.child(nsTSL, "TSLSequenceNumber")))
	l.Operator = firstName(si.child(nsTSL, "SchemeOperatorName"))
	l.IssueDate, _ = time.Parse(time.RFC3339, strings.TrimSpace(textOf(si.child(nsTSL, "ListIssueDateTime"))))
	if nu := si.child(nsTSL, "NextUpdate"); nu != nil {
		l.NextUpdate, _ = time.Parse(time.RFC3339, strings.TrimSpace(textOf(nu.child(nsTSL, "dateTime"))))
	}
	list := root.child(nsTSL, "TrustServiceProviderList")
	if list == nil {
		return l, nil
	}
	for _, tsp := range list.childrenNamed(nsTSL, "TrustServiceProvider") {
		info := tsp.child(nsTSL, "TSPInformation")
		provider := ""
		if info != nil {
			provider = firstName(info.child(nsTSL, "TSPName"))
		}
		svcs := tsp.child(nsTSL, "TSPServices")
		if svcs == nil {
			continue
		}
		for _, svc := range svcs.childrenNamed(nsTSL, "TSPService") {
			inf := svc.child(nsTSL, "ServiceInformation")
			if inf == nil {
				return nil, fmt.Errorf("%w: a service of %q has no ServiceInformation", ErrTrustedList, provider)
			}
			s := TrustService{
				Provider: provider,
				Name:     firstName(inf.child(nsTSL, "ServiceName")),
				Type:     strings.TrimSpace(textOf(inf.child(nsTSL, "ServiceTypeIdentifier"))),
			}
			st, err := readStatus(inf, s.Name)
			if err != nil {
				return nil, err
			}
			s.History = append(s.History, st)
			if sdi := inf.child(nsTSL, "ServiceDigitalIdentity"); sdi != nil {
				for _, di := range sdi.childrenNamed(nsTSL, "DigitalId") {
					if x := di.child(nsTSL, "X509Certificate"); x != nil {
						der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(x.text()), ""))
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
			if hist := svc.child(nsTSL, "ServiceHistory"); hist != nil {
				for _, h := range hist.childrenNamed(nsTSL, "ServiceHistoryInstance") {
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

func readStatus(n *xnode, service string) (ServiceStatus, error) {
	st := ServiceStatus{Status: strings.TrimSpace(textOf(n.child(nsTSL, "ServiceStatus")))}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(textOf(n.child(nsTSL, "StatusStartingTime"))))
	if err != nil {
		return st, fmt.Errorf("%w: status starting time", ErrTrustedList)
	}
	st.Start = t
	st.Qualifications, err = readQualifications(n, service)
	return st, err
}

// firstName prefers the English name of a multilingual name list.
func firstName(n *xnode) string {
	if n == nil {
		return ""
	}
	names := n.childrenNamed(nsTSL, "Name")
	for _, x := range names {
		for _, a := range x.attrs {
			if a.prefix == "xml" && a.local == "lang" && a.value == "en" {
				return strings.TrimSpace(x.text())
			}
		}
	}
	if len(names) > 0 {
		return strings.TrimSpace(names[0].text())
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
	root, err := parseXMLTree(data)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	sig := root.child(nsDSig, "Signature")
	ki := (*xnode)(nil)
	if sig != nil {
		ki = sig.child(nsDSig, "KeyInfo")
	}
	if ki == nil {
		return nil, nil
	}
	for _, xd := range ki.childrenNamed(nsDSig, "X509Data") {
		for _, x := range xd.childrenNamed(nsDSig, "X509Certificate") {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(x.text()), ""))
			if err != nil {
				return nil, err
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}
