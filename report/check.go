package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ErrInvalidReport is returned by Check for a document that is not a
// validation report of the structure Write produces.
var ErrInvalidReport = errors.New("not a valid ETSI TS 119 102-2 validation report")

// maxDepth bounds the element nesting Check follows.
const maxDepth = 32

// childOrder is the schema's sequence of child elements for each element
// Write produces, keyed "parent/element" by local name (the schema reuses
// names such as ValidationObject at two levels).
var childOrder = map[string][]string{
	"/ValidationReport": {"SignatureValidationReport", "SignatureValidationObjects", "SignatureValidator", "Signature"},
	"ValidationReport/SignatureValidationReport": {"SignatureIdentifier", "ValidationConstraintsEvaluationReport", "ValidationTimeInfo",
		"SignersDocument", "SignatureAttributes", "SignerInformation", "SignatureQuality", "SignatureValidationProcess", "SignatureValidationStatus"},
	"SignatureValidationReport/SignatureIdentifier":                   {"DigestAlgAndValue", "SignatureValue", "HashOnly", "DocHashOnly", "DAIdentifier"},
	"SignatureValidationReport/ValidationConstraintsEvaluationReport": {"SignatureValidationPolicy", "ValidationConstraint"},
	"ValidationConstraintsEvaluationReport/SignatureValidationPolicy": {"SignaturePolicyIdentifier", "PolicyName", "FormalPolicyURI", "ReadablePolicyURI", "FormalPolicyObject"},
	"SignatureValidationReport/ValidationTimeInfo":                    {"ValidationTime", "BestSignatureTime"},
	"ValidationTimeInfo/BestSignatureTime":                            {"POETime", "TypeOfProof", "POEObject"},
	"SignatureValidationReport/SignersDocument":                       {"DigestAlgAndValue", "SignersDocumentRef"},
	"SignatureAttributes/SigningTime":                                 {"AttributeObject", "Time"},
	"SignatureAttributes/SignatureTimeStamp":                          {"AttributeObject", "TimeStampValue"},
	"SignatureValidationReport/SignerInformation":                     {"SignerCertificate", "Signer"},
	"SignatureValidationReport/SignatureValidationProcess":            {"SignatureValidationProcessID", "SignatureValidationServicePolicy", "SignatureValidationPracticeStatement"},
	"SignatureValidationReport/SignatureValidationStatus":             {"MainIndication", "SubIndication", "AssociatedValidationReportData"},
	"SignatureValidationStatus/AssociatedValidationReportData": {"TrustAnchor", "CertificateChain", "SignedDataObjects",
		"RevocationStatusInformation", "CryptoInformation", "AdditionalValidationReportData"},
	"AssociatedValidationReportData/CertificateChain":               {"SigningCertificate", "IntermediateCertificate", "TrustAnchor"},
	"AssociatedValidationReportData/AdditionalValidationReportData": {"ReportData"},
	"AdditionalValidationReportData/ReportData":                     {"Type", "Value"},
	"ValidationReport/SignatureValidationObjects":                   {"ValidationObject"},
	"SignatureValidationObjects/ValidationObject":                   {"ObjectType", "ValidationObject", "POE", "POEProvisioning", "ValidationReport"},
	"ValidationObject/ValidationObject":                             {"direct", "base64", "DigestAlgAndValue", "URI"},
	"SignatureIdentifier/DigestAlgAndValue":                         {"DigestMethod", "DigestValue"},
	"SignersDocument/DigestAlgAndValue":                             {"DigestMethod", "DigestValue"},
	"ValidationObject/DigestAlgAndValue":                            {"DigestMethod", "DigestValue"},
}

// subIndicationNames are the sub-indications of ETSI EN 319 102-1.
var subIndicationNames = []string{
	"FORMAT_FAILURE", "HASH_FAILURE", "SIG_CRYPTO_FAILURE", "REVOKED", "SIG_CONSTRAINTS_FAILURE",
	"CHAIN_CONSTRAINTS_FAILURE", "CERTIFICATE_CHAIN_GENERAL_FAILURE", "CRYPTO_CONSTRAINTS_FAILURE",
	"EXPIRED", "NOT_YET_VALID", "POLICY_PROCESSING_ERROR", "SIGNATURE_POLICY_NOT_AVAILABLE",
	"TIMESTAMP_ORDER_FAILURE", "NO_SIGNING_CERTIFICATE_FOUND", "NO_CERTIFICATE_CHAIN_FOUND",
	"REVOKED_NO_POE", "REVOKED_CA_NO_POE", "OUT_OF_BOUNDS_NO_POE", "OUT_OF_BOUNDS_NOT_REVOKED",
	"CRYPTO_CONSTRAINTS_FAILURE_NO_POE", "NO_POE", "TRY_LATER", "SIGNED_DATA_NOT_FOUND", "GENERIC",
}

// IsSubIndication says whether name is an ETSI EN 319 102-1 sub-indication.
func IsSubIndication(name string) bool { return slices.Contains(subIndicationNames, name) }

// Check parses a report (at most MaxBytes) and checks what the schema and
// pecet's rules require of it: the element order of every element Write
// produces, the namespaces, the indication and proof-type URNs, unique
// object ids, and that every VOReference resolves to an object of the
// report. The schema itself is checked with xmllint in the tests when it
// is at hand (docs/api.md "Validation reports").
func Check(data []byte) (*ValidationReport, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidReport, len(data), MaxBytes)
	}
	if err := checkOrder(data); err != nil {
		return nil, err
	}
	var r ValidationReport
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	if len(r.Reports) == 0 {
		return nil, fmt.Errorf("%w: no SignatureValidationReport", ErrInvalidReport)
	}
	ids := map[string]bool{}
	if r.Objects != nil {
		for _, o := range r.Objects.Objects {
			if o.ID == "" || ids[o.ID] {
				return nil, fmt.Errorf("%w: object id %q empty or repeated", ErrInvalidReport, o.ID)
			}
			ids[o.ID] = true
			if !strings.HasPrefix(o.ObjectType, ObjectTypePrefix) {
				return nil, fmt.Errorf("%w: object type %q", ErrInvalidReport, o.ObjectType)
			}
			if d := o.Representation.DigestAlgAndValue; d == nil || len(d.Value) == 0 || d.Method.Algorithm == "" {
				return nil, fmt.Errorf("%w: object %s has no digest", ErrInvalidReport, o.ID)
			}
		}
	}
	for _, ref := range r.References() {
		if !ids[ref] {
			return nil, fmt.Errorf("%w: VOReference %q names no object of the report", ErrInvalidReport, ref)
		}
	}
	for _, s := range r.Reports {
		switch s.Status.MainIndication {
		case TotalPassed, TotalFailed, Indeterminate:
		default:
			return nil, fmt.Errorf("%w: main indication %q", ErrInvalidReport, s.Status.MainIndication)
		}
		for _, u := range s.Status.SubIndications {
			if !strings.HasPrefix(u, SubIndicationPrefix) || !IsSubIndication(strings.TrimPrefix(u, SubIndicationPrefix)) {
				return nil, fmt.Errorf("%w: sub-indication %q", ErrInvalidReport, u)
			}
		}
		if s.Status.MainIndication == TotalPassed && len(s.Status.SubIndications) > 0 {
			return nil, fmt.Errorf("%w: total-passed with a sub-indication", ErrInvalidReport)
		}
		if t := s.TimeInfo; t != nil {
			switch t.BestSignatureTime.TypeOfProof {
			case POEValidation, POEProvided, POEPolicy:
			default:
				return nil, fmt.Errorf("%w: type of proof %q", ErrInvalidReport, t.BestSignatureTime.TypeOfProof)
			}
		}
	}
	return &r, nil
}

// checkOrder walks the elements and checks each known element's children
// against the schema's sequence.
func checkOrder(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	type frame struct {
		key  string
		name string
		last int // index in childOrder[key] of the last child seen
	}
	stack := []frame{{key: "", name: ""}}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidReport, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) > maxDepth {
				return fmt.Errorf("%w: nested deeper than %d", ErrInvalidReport, maxDepth)
			}
			parent := &stack[len(stack)-1]
			if len(stack) == 1 && (t.Name.Space != NS || t.Name.Local != "ValidationReport") {
				return fmt.Errorf("%w: root is {%s}%s", ErrInvalidReport, t.Name.Space, t.Name.Local)
			}
			if want := wantSpace(parent.name, t.Name.Local); want != "" && t.Name.Space != want {
				return fmt.Errorf("%w: %s in namespace %q, want %q", ErrInvalidReport, t.Name.Local, t.Name.Space, want)
			}
			if order, ok := childOrder[parent.key]; ok {
				i := slices.Index(order, t.Name.Local)
				if i < 0 {
					return fmt.Errorf("%w: %s is not a child of %s", ErrInvalidReport, t.Name.Local, parent.name)
				}
				if i < parent.last {
					return fmt.Errorf("%w: %s after %s in %s", ErrInvalidReport, t.Name.Local, order[parent.last], parent.name)
				}
				parent.last = i
			}
			stack = append(stack, frame{key: parent.name + "/" + t.Name.Local, name: t.Name.Local})
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	return nil
}

// wantSpace is the namespace an element must have where it is not the
// report's own.
func wantSpace(parent, local string) string {
	switch {
	case local == "DigestMethod" || local == "DigestValue":
		return NSDSig
	case parent == "SignaturePolicyIdentifier":
		return NSXAdES
	case parent == "" || parent == "Value" || parent == "direct":
		return ""
	}
	return NS
}
