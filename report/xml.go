package report

import (
	"encoding/base64"
	"strings"
)

// The element structure of ETSI TS 119 102-2 (its XML schema,
// 1910202xmlSchema.xsd, namespace NS): every field in schema order, the
// optional ones omitted when empty. Children without a namespace in their
// tag inherit the report's default namespace; XMLDSig and XAdES elements
// carry theirs.

// ValidationReport is the root element.
type ValidationReport struct {
	XMLName struct{}                    `xml:"http://uri.etsi.org/19102/v1.2.1# ValidationReport"`
	Reports []SignatureValidationReport `xml:"SignatureValidationReport"`
	Objects *ValidationObjectList       `xml:"SignatureValidationObjects,omitempty"`
}

// SignatureValidationReport is the report on one signature (or, for
// ValidateCertificate, on one certificate).
type SignatureValidationReport struct {
	SignatureIdentifier *SignatureIdentifier        `xml:"SignatureIdentifier,omitempty"`
	Constraints         *ConstraintsReport          `xml:"ValidationConstraintsEvaluationReport,omitempty"`
	TimeInfo            *ValidationTimeInfo         `xml:"ValidationTimeInfo,omitempty"`
	SignersDocument     *SignersDocument            `xml:"SignersDocument,omitempty"`
	SignatureAttributes *SignatureAttributes        `xml:"SignatureAttributes,omitempty"`
	SignerInformation   *SignerInformation          `xml:"SignerInformation,omitempty"`
	Process             *SignatureValidationProcess `xml:"SignatureValidationProcess,omitempty"`
	Status              ValidationStatus            `xml:"SignatureValidationStatus"`
}

// SignatureIdentifier names the signature by the digest of its encoding.
type SignatureIdentifier struct {
	ID                string             `xml:"id,attr,omitempty"`
	DigestAlgAndValue *DigestAlgAndValue `xml:"DigestAlgAndValue,omitempty"`
	HashOnly          bool               `xml:"HashOnly"`
	DocHashOnly       bool               `xml:"DocHashOnly"`
}

// DigestAlgAndValue is XAdES's DigestAlgAndValueType.
type DigestAlgAndValue struct {
	Method DigestMethod `xml:"http://www.w3.org/2000/09/xmldsig# DigestMethod"`
	Value  Base64       `xml:"http://www.w3.org/2000/09/xmldsig# DigestValue"`
}

// Base64 is bytes as xs:base64Binary (encoding/xml writes []byte raw).
type Base64 []byte

// MarshalText implements encoding.TextMarshaler.
func (b Base64) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(b)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Base64) UnmarshalText(text []byte) error {
	d, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(text)))
	*b = d
	return err
}

// DigestMethod is ds:DigestMethod.
type DigestMethod struct {
	Algorithm string `xml:"Algorithm,attr"`
}

// ConstraintsReport names the policy applied.
type ConstraintsReport struct {
	Policy *SignatureValidationPolicy `xml:"SignatureValidationPolicy,omitempty"`
}

// SignatureValidationPolicy is the policy by name; pecet's policies have
// no XAdES identifier, so the identifier is "implied".
type SignatureValidationPolicy struct {
	Identifier SignaturePolicyIdentifier `xml:"SignaturePolicyIdentifier"`
	PolicyName string                    `xml:"PolicyName,omitempty"`
}

// SignaturePolicyIdentifier is XAdES's SignaturePolicyIdentifierType.
type SignaturePolicyIdentifier struct {
	Implied *struct{} `xml:"http://uri.etsi.org/01903/v1.3.2# SignaturePolicyImplied"`
}

// ValidationTimeInfo is the validation time and the best signature time.
type ValidationTimeInfo struct {
	ValidationTime    string `xml:"ValidationTime"`
	BestSignatureTime POE    `xml:"BestSignatureTime"`
}

// POE is a proof of existence: a time, its type of proof and the object
// that proves it.
type POE struct {
	Time        string `xml:"POETime"`
	TypeOfProof string `xml:"TypeOfProof"`
	Object      *VORef `xml:"POEObject,omitempty"`
}

// VORef refers to validation objects by id.
type VORef struct {
	Ref string `xml:"VOReference,attr"`
}

// SignersDocument is the digest of the signed content (never the content).
type SignersDocument struct {
	DigestAlgAndValue DigestAlgAndValue `xml:"DigestAlgAndValue"`
}

// SignatureAttributes are the signature's time attributes.
type SignatureAttributes struct {
	SigningTime        *SASigningTime `xml:"SigningTime,omitempty"`
	SignatureTimeStamp []SATimestamp  `xml:"SignatureTimeStamp,omitempty"`
}

// SASigningTime is the signer's claimed signing time.
type SASigningTime struct {
	Signed bool   `xml:"Signed,attr,omitempty"`
	Time   string `xml:"Time"`
}

// SATimestamp is a signature time-stamp with its token object.
type SATimestamp struct {
	Signed         bool    `xml:"Signed,attr,omitempty"`
	Objects        []VORef `xml:"AttributeObject,omitempty"`
	TimeStampValue string  `xml:"TimeStampValue"`
}

// SignerInformation names the signer's certificate.
type SignerInformation struct {
	SignerCertificate VORef  `xml:"SignerCertificate"`
	Signer            string `xml:"Signer,omitempty"`
}

// SignatureValidationProcess names the ETSI EN 319 102-1 process run.
type SignatureValidationProcess struct {
	ID string `xml:"SignatureValidationProcessID,omitempty"`
}

// ValidationStatus is the main indication, the sub-indications, and the
// data that supports them.
type ValidationStatus struct {
	MainIndication string                 `xml:"MainIndication"`
	SubIndications []string               `xml:"SubIndication,omitempty"`
	Associated     []ValidationReportData `xml:"AssociatedValidationReportData,omitempty"`
}

// ValidationReportData is the chain and pecet's own findings.
type ValidationReportData struct {
	CertificateChain *CertificateChain               `xml:"CertificateChain,omitempty"`
	Additional       *AdditionalValidationReportData `xml:"AdditionalValidationReportData,omitempty"`
}

// CertificateChain is the path built, leaf first.
type CertificateChain struct {
	SigningCertificate VORef   `xml:"SigningCertificate"`
	Intermediates      []VORef `xml:"IntermediateCertificate,omitempty"`
	TrustAnchor        *VORef  `xml:"TrustAnchor,omitempty"`
}

// AdditionalValidationReportData holds typed data.
type AdditionalValidationReportData struct {
	ReportData []ReportData `xml:"ReportData"`
}

// ReportData is one typed value: a pecet reason (its code in the type),
// a trusted list, an override, a count of what the bounds left out.
type ReportData struct {
	Type  string `xml:"Type"`
	Value string `xml:"Value"`
}

// ValidationObjectList lists the validation objects.
type ValidationObjectList struct {
	Objects []ValidationObject `xml:"ValidationObject"`
}

// ValidationObject is one object by id, type and digest.
type ValidationObject struct {
	ID             string         `xml:"id,attr"`
	ObjectType     string         `xml:"ObjectType"`
	Representation Representation `xml:"ValidationObject"`
}

// Representation is the object's digest (ETSI allows the object itself,
// a URI or the digest; the digest keeps the report bounded).
type Representation struct {
	DigestAlgAndValue *DigestAlgAndValue `xml:"DigestAlgAndValue,omitempty"`
}
