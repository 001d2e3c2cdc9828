// Package report writes validation reports after ETSI TS 119 102-2
// (XML, namespace http://uri.etsi.org/19102/v1.2.1#) from pecet's
// verdicts: main and sub-indication as the standard's URNs, the validation
// time, the best signature time with its proof type, the signer's chain,
// the policy, and the validation objects used, each named by id and the
// SHA-256 of its bytes so a later re-validation is reproducible.
//
// A report is data about a verification. It never holds the signed
// content: at most the digest the signature covers. docs/api.md
// "Validation reports" documents the structure and the table that maps
// pecet's reason codes to ETSI sub-indications.
package report

import (
	"crypto"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// Namespaces of the report and of the schemas it imports.
const (
	NS      = "http://uri.etsi.org/19102/v1.2.1#"
	NSDSig  = "http://www.w3.org/2000/09/xmldsig#"
	NSXAdES = "http://uri.etsi.org/01903/v1.3.2#"
)

// URN prefixes of ETSI TS 119 102-2.
const (
	MainIndicationPrefix = "urn:etsi:019102:mainindication:"
	SubIndicationPrefix  = "urn:etsi:019102:subindication:"
	POETypePrefix        = "urn:etsi:019102:poetype:"
	ObjectTypePrefix     = "urn:etsi:019102:validationObject:"
	ProcessPrefix        = "urn:etsi:019102:validationprocess:"
	// ReasonTypePrefix types pecet's own findings in
	// AdditionalValidationReportData: the reason code follows.
	ReasonTypePrefix = "urn:pecet:reason:"
	// TrustedListType types the description of a trusted list used.
	TrustedListType = "urn:pecet:trustedlist"
	// OmittedType says how many objects or reasons the bounds left out.
	OmittedType = "urn:pecet:omitted"
	// SHA256URI is the digest algorithm of every DigestAlgAndValue.
	SHA256URI = "http://www.w3.org/2001/04/xmlenc#sha256"
)

// Main indications.
const (
	TotalPassed   = MainIndicationPrefix + "total-passed"
	TotalFailed   = MainIndicationPrefix + "total-failed"
	Indeterminate = MainIndicationPrefix + "indeterminate"
)

// Proof types of a best signature time (ETSI TS 119 102-2 5.2.4): pecet
// derived the time during validation (a verified time-stamp, or the
// current time when there is none), or the caller provided it.
const (
	POEValidation = POETypePrefix + "validation"
	POEProvided   = POETypePrefix + "provided"
	POEPolicy     = POETypePrefix + "policy"
)

// Bounds. The objects a verification uses are bounded by its own limits
// (path length, CRLs per request and policy, CMS attribute counts); these
// caps hold the report to MaxBytes whatever those are. What exceeds them
// is counted in an OmittedType entry, never silently dropped.
const (
	MaxObjects      = 256
	MaxReasons      = 64
	MaxMessageBytes = 512
	// MaxBytes bounds a whole report (tested with every cap reached).
	MaxBytes = 512 << 10
)

// Input is what a report is made from.
type Input struct {
	Verdict policy.Verdict
	// Signature is the CMS signature verified (Verify); nil for a
	// certificate validation. Only its SHA-256 enters the report.
	Signature []byte
	// DocumentDigest is the digest of the signed content with
	// DocumentHash; the content itself never enters the report.
	DocumentDigest []byte
	DocumentHash   crypto.Hash
	// HashOnly: the caller gave a digest, not the content.
	HashOnly bool
	// AtProvided: the caller asserted the validation time (the request's
	// at), so a best signature time without a time-stamp is "provided".
	AtProvided bool
	// Extra certificates used, DER (a ValidateCertificate request's
	// intermediates), named as objects even when no path was found.
	Extra [][]byte
}

// Write renders in as a validation report.
func Write(in Input) ([]byte, error) {
	b := newBuilder()
	r := b.build(in)
	out, err := xml.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	out = append([]byte(xml.Header), out...)
	out = append(out, '\n')
	if len(out) > MaxBytes {
		// Cannot happen with the caps above; a guard against a change
		// that breaks them.
		return nil, fmt.Errorf("report: %d bytes, more than %d", len(out), MaxBytes)
	}
	return out, nil
}

// MainIndication is the URN for a verdict status.
func MainIndication(s policy.Status) string {
	switch s {
	case policy.Valid:
		return TotalPassed
	case policy.Invalid:
		return TotalFailed
	}
	return Indeterminate
}

type builder struct {
	objs    []ValidationObject
	byHash  map[string]string
	omitted int
}

func newBuilder() *builder { return &builder{byHash: map[string]string{}} }

// object registers a validation object and returns its id; "" when the
// cap left it out.
func (b *builder) object(kind policy.ObjectKind, raw, digest []byte) string {
	if raw != nil {
		s := sha256.Sum256(raw)
		digest = s[:]
	}
	if digest == nil {
		return ""
	}
	key := string(kind) + "|" + string(digest)
	if id, ok := b.byHash[key]; ok {
		return id
	}
	if len(b.objs) >= MaxObjects {
		b.omitted++
		return ""
	}
	id := fmt.Sprintf("vo-%d", len(b.objs)+1)
	b.byHash[key] = id
	b.objs = append(b.objs, ValidationObject{
		ID:             id,
		ObjectType:     ObjectTypePrefix + objectType(kind),
		Representation: Representation{DigestAlgAndValue: digestOf(digest)},
	})
	return id
}

func objectType(k policy.ObjectKind) string {
	switch k {
	case policy.ObjectCertificate, policy.ObjectCRL, policy.ObjectOCSPResponse, policy.ObjectTimestamp:
		return string(k)
	}
	// A trusted list has no object type of its own in TS 119 102-2.
	return "other"
}

// hashURIs name the signed content's digest algorithm (RFC 6931); a
// digest with another hash is left out of the report.
var hashURIs = map[crypto.Hash]string{
	crypto.SHA256:   SHA256URI,
	crypto.SHA384:   "http://www.w3.org/2001/04/xmldsig-more#sha384",
	crypto.SHA512:   "http://www.w3.org/2001/04/xmlenc#sha512",
	crypto.SHA3_256: "http://www.w3.org/2007/05/xmldsig-more#sha3-256",
	crypto.SHA3_384: "http://www.w3.org/2007/05/xmldsig-more#sha3-384",
	crypto.SHA3_512: "http://www.w3.org/2007/05/xmldsig-more#sha3-512",
}

func digestOf(d []byte) *DigestAlgAndValue {
	return &DigestAlgAndValue{Method: DigestMethod{Algorithm: SHA256URI}, Value: d}
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// clip bounds a string from a verdict for the report.
func clip(s string) string {
	if len(s) <= MaxMessageBytes {
		return s
	}
	s = s[:MaxMessageBytes]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

func (b *builder) build(in Input) *ValidationReport {
	v := in.Verdict
	svr := SignatureValidationReport{}
	if in.Signature != nil {
		sum := sha256.Sum256(in.Signature)
		svr.SignatureIdentifier = &SignatureIdentifier{ID: "sig-1", DigestAlgAndValue: digestOf(sum[:]), DocHashOnly: in.HashOnly}
	}
	if v.Policy != "" {
		svr.Constraints = &ConstraintsReport{Policy: &SignatureValidationPolicy{
			Identifier: SignaturePolicyIdentifier{Implied: &struct{}{}},
			PolicyName: clip(v.Policy),
		}}
	}

	// The chain first, so its objects get the lowest ids, leaf first.
	var chainIDs []string
	for _, c := range v.Chain {
		chainIDs = append(chainIDs, b.object(policy.ObjectCertificate, c.Raw, nil))
	}
	signingID := ""
	if len(chainIDs) > 0 {
		signingID = chainIDs[0]
	}
	var tokens []policy.UsedObject
	var tls []policy.UsedObject
	for _, u := range v.Used {
		id := b.object(u.Kind, u.Raw, u.Digest)
		switch {
		case u.Kind == policy.ObjectCertificate && u.Name == signer.UsedSigningCertificate && signingID == "":
			signingID = id
		case u.Kind == policy.ObjectTimestamp:
			tokens = append(tokens, u)
		case u.Kind == policy.ObjectTrustedList:
			tls = append(tls, u)
		}
	}
	for _, der := range in.Extra {
		id := b.object(policy.ObjectCertificate, der, nil)
		if signingID == "" && in.Signature == nil {
			signingID = id // ValidateCertificate: the first is the one judged
		}
	}

	// Best signature time (TS 119 102-2 4.3.3): the earliest verified
	// time-stamp's, else the caller's time, else the validation time.
	best := POE{Time: ts(v.ValidatedAt), TypeOfProof: POEValidation}
	switch {
	case !v.TimestampTime.IsZero():
		best = POE{Time: ts(v.TimestampTime), TypeOfProof: POEValidation}
		for _, t := range tokens {
			if t.Time.Equal(v.TimestampTime) {
				if id := b.lookup(t); id != "" {
					best.Object = &VORef{Ref: id}
				}
				break
			}
		}
	case in.AtProvided:
		best.TypeOfProof = POEProvided
	}
	svr.TimeInfo = &ValidationTimeInfo{ValidationTime: ts(v.ValidatedAt), BestSignatureTime: best}
	if v.ValidatedAt.IsZero() {
		svr.TimeInfo = nil // nothing was judged (unknown policy); no time to state
	}
	if uri, ok := hashURIs[in.DocumentHash]; ok && in.DocumentDigest != nil {
		svr.SignersDocument = &SignersDocument{DigestAlgAndValue: DigestAlgAndValue{Method: DigestMethod{Algorithm: uri}, Value: in.DocumentDigest}}
	}
	if in.Signature != nil && (!v.SigningTime.IsZero() || len(tokens) > 0) {
		sa := &SignatureAttributes{}
		if !v.SigningTime.IsZero() {
			sa.SigningTime = &SASigningTime{Signed: true, Time: ts(v.SigningTime)}
		}
		for _, t := range tokens {
			st := SATimestamp{Signed: false, TimeStampValue: ts(t.Time)}
			if id := b.lookup(t); id != "" {
				st.Objects = []VORef{{Ref: id}}
			}
			if t.Time.IsZero() {
				continue // a token that did not verify has no time to state
			}
			sa.SignatureTimeStamp = append(sa.SignatureTimeStamp, st)
		}
		if sa.SigningTime != nil || len(sa.SignatureTimeStamp) > 0 {
			svr.SignatureAttributes = sa
		}
	}
	if signingID != "" {
		svr.SignerInformation = &SignerInformation{SignerCertificate: VORef{Ref: signingID}, Signer: clip(v.Subject)}
	}
	process := "Basic"
	if !v.TimestampTime.IsZero() {
		process = "LTVM" // validation with time: a signature time-stamp was verified
	}
	svr.Process = &SignatureValidationProcess{ID: ProcessPrefix + process}

	status := ValidationStatus{MainIndication: MainIndication(v.Status)}
	if v.Status != policy.Valid {
		seen := map[string]bool{}
		for _, r := range v.Reasons {
			if r.Code.Note() {
				continue // says how the qualification was decided; no finding
			}
			u := SubIndicationPrefix + SubIndication(r.Code)
			if !seen[u] {
				seen[u] = true
				status.SubIndications = append(status.SubIndications, u)
			}
		}
	}
	data := ValidationReportData{}
	if len(chainIDs) > 0 && chainIDs[0] != "" {
		cc := &CertificateChain{SigningCertificate: VORef{Ref: chainIDs[0]}}
		for i, id := range chainIDs[1:] {
			if id == "" {
				continue
			}
			if i == len(chainIDs)-2 {
				cc.TrustAnchor = &VORef{Ref: id}
			} else {
				cc.Intermediates = append(cc.Intermediates, VORef{Ref: id})
			}
		}
		data.CertificateChain = cc
	}
	var extra []ReportData
	for i, r := range v.Reasons {
		if i == MaxReasons {
			extra = append(extra, ReportData{Type: OmittedType, Value: fmt.Sprintf("%d more reasons", len(v.Reasons)-MaxReasons)})
			break
		}
		extra = append(extra, ReportData{Type: ReasonTypePrefix + string(r.Code), Value: clip(r.Message)})
	}
	for _, t := range tls {
		d := clip(t.Name)
		if !t.Time.IsZero() {
			d += ", issued " + ts(t.Time)
		}
		if id := b.lookup(t); id != "" {
			d += ", object " + id
		}
		extra = append(extra, ReportData{Type: TrustedListType, Value: d})
	}
	for _, o := range v.Overrides {
		extra = append(extra, ReportData{Type: "urn:pecet:override", Value: clip(o)})
	}
	if b.omitted > 0 {
		extra = append(extra, ReportData{Type: OmittedType, Value: fmt.Sprintf("%d more validation objects", b.omitted)})
	}
	if len(extra) > 0 {
		data.Additional = &AdditionalValidationReportData{ReportData: extra}
	}
	if data.CertificateChain != nil || data.Additional != nil {
		status.Associated = []ValidationReportData{data}
	}
	svr.Status = status

	rep := &ValidationReport{Reports: []SignatureValidationReport{svr}}
	if len(b.objs) > 0 {
		rep.Objects = &ValidationObjectList{Objects: b.objs}
	}
	return rep
}

// lookup is the id of an object already registered; "" when the cap left
// it out.
func (b *builder) lookup(u policy.UsedObject) string {
	d := u.Digest
	if u.Raw != nil {
		s := sha256.Sum256(u.Raw)
		d = s[:]
	}
	return b.byHash[string(u.Kind)+"|"+string(d)]
}

// IDs lists the ids of a report's validation objects, and References
// every VOReference in it (each may name several ids, space separated):
// what the tests check resolves.
func (r *ValidationReport) IDs() map[string]bool {
	ids := map[string]bool{}
	if r.Objects != nil {
		for _, o := range r.Objects.Objects {
			ids[o.ID] = true
		}
	}
	return ids
}

// References lists every VOReference id in r.
func (r *ValidationReport) References() []string {
	var refs []string
	add := func(v *VORef) {
		if v != nil {
			refs = append(refs, strings.Fields(v.Ref)...)
		}
	}
	for i := range r.Reports {
		s := &r.Reports[i]
		if s.TimeInfo != nil {
			add(s.TimeInfo.BestSignatureTime.Object)
		}
		if s.SignerInformation != nil {
			add(&s.SignerInformation.SignerCertificate)
		}
		if s.SignatureAttributes != nil {
			for j := range s.SignatureAttributes.SignatureTimeStamp {
				for k := range s.SignatureAttributes.SignatureTimeStamp[j].Objects {
					add(&s.SignatureAttributes.SignatureTimeStamp[j].Objects[k])
				}
			}
		}
		for _, d := range s.Status.Associated {
			if c := d.CertificateChain; c != nil {
				add(&c.SigningCertificate)
				for k := range c.Intermediates {
					add(&c.Intermediates[k])
				}
				add(c.TrustAnchor)
			}
		}
	}
	return refs
}
