package signer

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"
)

// findUnparsedSigner looks for the signer's certificate among those
// crypto/x509 refuses, by issuer and serial number, and returns a stand-in
// with what Verify can still use from it: Raw, RawIssuer, SerialNumber,
// Subject and, when it parses, PublicKey. The second result is why
// crypto/x509 refused it. It reads only the outer fields of the
// TBSCertificate, which Parse has already bounded and normalised.
func findUnparsedSigner(unparsed []UnparsedCertificate, si *SignerInfo) (*x509.Certificate, error) {
	if si.Issuer == nil {
		return nil, nil // a subject key identifier needs the extensions
	}
	for _, u := range unparsed {
		s := cryptobyte.String(u.Raw)
		var cert, tbs, issuer, subject, spki cryptobyte.String
		serial := new(big.Int)
		if !s.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
			!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!tbs.ReadASN1Integer(serial) || !tbs.SkipASN1(cbasn1.SEQUENCE) ||
			!tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) || !tbs.SkipASN1(cbasn1.SEQUENCE) ||
			!tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
			continue
		}
		if serial.Cmp(si.SerialNumber) != 0 || !policy.EqualNames(issuer, si.Issuer) {
			continue
		}
		stub := &x509.Certificate{Raw: u.Raw, RawIssuer: issuer, SerialNumber: serial}
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(subject, &rdn); err == nil && len(rest) == 0 {
			stub.Subject.FillFromRDNSequence(&rdn)
		}
		if pub, err := x509.ParsePKIXPublicKey(spki); err == nil {
			stub.PublicKey = pub
		}
		return stub, u.Err
	}
	return nil, nil
}
