package signer

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/pecet-hsm/pecet/policy"
)

// berExtensionCert issues a certificate whose certificatePolicies extension
// has a long-form length where DER wants the short form: crypto/x509
// refuses it ("invalid certificate policies"), other readers accept it,
// and real CAs issued such certificates (the DSS sample below). It returns
// a stand-in with the fields craft needs.
func berExtensionCert(t testing.TB, ca *testCA, key crypto.Signer) *x509.Certificate {
	t.Helper()
	policies := []byte{0x30, 0x08, 0x30, 0x81, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x04}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "BER extension signer", Country: []string{"IT"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 32}, Value: policies}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("crypto/x509 accepts the certificate: the test needs one it refuses")
	}
	return &x509.Certificate{Raw: der, RawIssuer: ca.cert.RawSubject, SerialNumber: big.NewInt(77), PublicKey: key.Public()}
}

// TestSignedAttributeOrder: signed attributes out of DER SET OF order, as
// real signers write them, always get a verdict (never ErrMalformed, exit
// 4): the signature is checked over the attributes as encoded, then over
// their DER order (docs/security.md, "Signed attributes out of DER
// order"). The case that was a parse error: such a signer's certificate
// that crypto/x509 refuses (a BER length inside an extension).
func TestSignedAttributeOrder(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("PROVA")
	sum := sha256.Sum256(content)
	at := time.Now().Add(-time.Minute)
	ct := attr(t, oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
	md := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(sum[:]) })
	st := attr(t, oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, at) })
	other := sha256.Sum256([]byte("other"))
	mdOther := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(other[:]) })

	ber := f
	ber.cert = berExtensionCert(t, f.ca, f.key)
	essBER := attr(t, oidAttrSigningCertificateV2, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, crypto.SHA256, ber.cert) })

	tests := []struct {
		name   string
		f      signerFixture
		sorted bool
		attrs  [][]byte
		status policy.Status
		codes  []policy.Code // exactly these reasons
	}{
		// In DER order these are ct, md, st (…9.3, …9.4, …9.5).
		{"unsorted, signed as encoded", f, false, [][]byte{st, md, ct}, policy.Valid, nil},
		{"unsorted, signed in DER order", f, true, [][]byte{st, md, ct}, policy.Valid, nil},
		{"unsorted, wrong digest", f, false, [][]byte{st, mdOther, ct}, policy.Invalid, []policy.Code{policy.CodeDigestMismatch}},
		{"unsorted, certificate crypto/x509 refuses", ber, false, [][]byte{st, essBER, md, ct}, policy.Indeterminate, []policy.Code{CodeCertificateUnreadable}},
		{"sorted, certificate crypto/x509 refuses, DER order", ber, true, [][]byte{st, essBER, md, ct}, policy.Indeterminate, []policy.Code{CodeCertificateUnreadable}},
		{"unsorted, certificate crypto/x509 refuses, wrong digest", ber, false, [][]byte{st, essBER, mdOther, ct}, policy.Invalid, []policy.Code{policy.CodeDigestMismatch, CodeCertificateUnreadable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(craft(t, tc.f, tc.sorted, tc.attrs...), VerifyOptions{Content: content, Validator: f.ca.validator()})
			if err != nil {
				t.Fatalf("want a verdict, got %v", err)
			}
			if v.Status != tc.status || len(v.Reasons) != len(tc.codes) {
				t.Fatalf("got %s %v, want %s %v", v.Status, v.Reasons, tc.status, tc.codes)
			}
			for _, c := range tc.codes {
				if !hasReason(v, c) {
					t.Fatalf("got %s %v, want %s %v", v.Status, v.Reasons, tc.status, tc.codes)
				}
			}
		})
	}

	// A signature over neither form of the attributes is INVALID, with
	// the certificate crypto/x509 refuses too: the public key is read
	// from it all the same.
	der := craft(t, ber, false, st, essBER, md, ct)
	der[len(der)-3] ^= 1 // inside the signature value, the last element
	v, err := Verify(der, VerifyOptions{Content: content})
	if err != nil || v.Status != policy.Invalid || !hasReason(v, policy.CodeSignatureMismatch) {
		t.Fatalf("tampered: %v %s %v", err, v.Status, v.Reasons)
	}
}
