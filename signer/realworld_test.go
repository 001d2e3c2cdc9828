package signer

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// Real-world material (docs/realworld.md): the structures below were found
// in signatures of real signers (EU DSS's CAdES test files) and are built
// here from scratch.

// TestTrailingZeroPadding: smart-card signers write the signature into a
// fixed-size buffer and save the whole buffer, so the DER ContentInfo is
// followed by zero bytes (2048, 2598 and 15859 of them in the DSS files).
// OpenSSL reads such files. Up to Limits.MaxTrailingZeros zero bytes are
// ignored; any other trailing byte, or more zeros, leaves the input
// malformed (docs/security.md, "Real-world material").
func TestTrailingZeroPadding(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("PROVA padded")
	sig, err := Sign(content, f.key, f.chain(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultLimits().MaxTrailingZeros
	zeros := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		name    string
		tail    []byte
		lim     Limits
		wantErr error
		padding int
	}{
		{"none", nil, Limits{}, nil, 0},
		{"one zero", zeros(1), Limits{}, nil, 1},
		{"2048 zeros (smart-card buffer)", zeros(2048), Limits{}, nil, 2048},
		{"15859 zeros", zeros(15859), Limits{}, nil, 15859},
		{"zeros at the limit", zeros(def), Limits{}, nil, def},
		{"zeros over the limit", zeros(def + 1), Limits{}, ErrMalformed, 0},
		{"zeros, then a non-zero byte", append(zeros(100), 1), Limits{}, ErrMalformed, 0},
		{"a non-zero byte, then zeros", append([]byte{1}, zeros(100)...), Limits{}, ErrMalformed, 0},
		{"a second element", sig, Limits{}, ErrMalformed, 0},
		{"an end-of-contents pair only", zeros(2), Limits{}, nil, 2},
		{"zeros, padding refused", zeros(16), Limits{MaxTrailingZeros: -1}, ErrMalformed, 0},
		{"zeros, raised limit", zeros(def + 10), Limits{MaxTrailingZeros: def + 10}, nil, def + 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte(nil), sig...), tc.tail...)
			sd, err := ParseWithLimits(in, tc.lim)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("ParseWithLimits: got %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if sd.TrailingZeros != tc.padding {
				t.Errorf("TrailingZeros %d, want %d", sd.TrailingZeros, tc.padding)
			}
			v, err := Verify(in, VerifyOptions{Content: content, Validator: f.ca.validator(), Limits: tc.lim})
			if err != nil || v.Status != policy.Valid {
				t.Fatalf("Verify: %v %s %v", err, v.Status, v.Reasons)
			}
		})
	}

	// The same with a BER (indefinite-length) message, as streaming
	// signers write: the padding follows the end-of-contents octets.
	ber := indefinite(t, sig)
	if _, err := Parse(ber); err != nil {
		t.Fatalf("BER form: %v", err)
	}
	if v, err := Verify(append(ber, zeros(512)...), VerifyOptions{Content: content, Validator: f.ca.validator()}); err != nil || v.Status != policy.Valid {
		t.Fatalf("BER form with padding: %v %s %v", err, v.Status, v.Reasons)
	}
	// The envelope parser shares the normaliser but not the tolerance.
	if _, err := cms.NormaliseBER(append(append([]byte(nil), sig...), 0, 0, 0), 0); !errors.Is(err, cms.ErrMalformedBER) {
		t.Fatalf("cms.NormaliseBER with trailing zeros: %v, want ErrMalformedBER", err)
	}

	// OpenSSL agrees: it reads the padded file.
	testtool.OpenSSL(t)
	dir := t.TempDir()
	padded := writeFile(t, dir, "padded.p7s", append(append([]byte(nil), sig...), zeros(2048)...))
	testtool.RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", padded,
		"-content", writeFile(t, dir, "data", content), "-CAfile", writeFile(t, dir, "ca.pem", certPEM(f.ca.cert)),
		"-purpose", "any", "-out", writeFile(t, dir, "out", nil))
}

// indefinite rewrites the outer ContentInfo SEQUENCE of a DER message with
// an indefinite length.
func indefinite(t testing.TB, der []byte) []byte {
	t.Helper()
	s := cryptobyte.String(der)
	var body cryptobyte.String
	var tag cbasn1.Tag
	if !s.ReadAnyASN1(&body, &tag) || !s.Empty() {
		t.Fatal("not one DER element")
	}
	out := []byte{der[0], 0x80}
	out = append(out, body...)
	return append(out, 0, 0)
}

// TestUnreadableNonSignerCertificate: a certificate crypto/x509 refuses in
// the certificates set that is NOT the signer's (an intermediate or an
// unrelated one a signer bundled) never makes the message malformed: it is
// kept in UnparsedCertificates, builds no chain, and the signer's verdict
// is what it would be without it.
func TestUnreadableNonSignerCertificate(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("PROVA other certificate")
	other := newKey(t, rsa2048)
	berExt := berExtensionCert(t, f.ca, other).Raw
	negSerial := negativeSerialCert(t, f.ca)
	tests := []struct {
		name  string
		extra [][]byte
	}{
		{"BER inside an extension", [][]byte{berExt}},
		{"negative serial number", [][]byte{negSerial}},
		{"both, and the CA after them", [][]byte{negSerial, berExt}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chain := []*x509.Certificate{f.cert}
			for _, raw := range tc.extra {
				chain = append(chain, &x509.Certificate{Raw: raw})
			}
			chain = append(chain, f.ca.cert)
			for _, attached := range []bool{false, true} {
				sig, err := Sign(content, f.key, chain, Options{Attached: attached})
				if err != nil {
					t.Fatal(err)
				}
				sd, err := Parse(sig)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if len(sd.UnparsedCertificates) != len(tc.extra) || len(sd.Certificates) != 2 {
					t.Fatalf("%d certificates read, %d unreadable; want 2 and %d", len(sd.Certificates), len(sd.UnparsedCertificates), len(tc.extra))
				}
				v, err := Verify(sig, VerifyOptions{Content: content, Validator: f.ca.validator()})
				if err != nil || v.Status != policy.Valid || len(v.Reasons) != 0 {
					t.Fatalf("attached=%v: %v %s %v", attached, err, v.Status, v.Reasons)
				}
			}
		})
	}
}

// negativeSerialCert returns a certificate whose serial number is
// negative, which crypto/x509 refuses and some CAs issued: made with a
// positive serial, then the INTEGER's first octet is flipped. Its own
// signature no longer verifies, which does not matter for a certificate
// nobody chains through.
func negativeSerialCert(t testing.TB, ca *testCA) []byte {
	t.Helper()
	serial := big.NewInt(0x55)
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "negative serial"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, newKey(t, p256).Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	// version [0] {INTEGER 2}, then the serial INTEGER 02 01 55.
	i := bytes.Index(der, []byte{0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x55})
	if i < 0 {
		t.Fatal("serial number not found")
	}
	der[i+7] = 0xd5
	if _, err := x509.ParseCertificate(der); err == nil {
		t.Fatal("crypto/x509 accepts the certificate: the test needs one it refuses")
	}
	return der
}

// TestSigningCertificateIssuerNameMatching: the issuerSerial of an ESS
// signing-certificate(-v2) attribute names the issuer as a GeneralName, and
// real signers re-encode it: the ETSI plugtest sample Signature-C-B-B-8 and
// an FNMT-RCM seal in the DSS files write UTF8String where the certificate
// has PrintableString. The certHash already binds the certificate; the
// issuer is compared as RFC 5280 7.1 compares names (string types decoded,
// case and insignificant white space folded), as OpenSSL's X509_NAME_cmp
// and DSS do, so only a different name or serial is a mismatch.
func TestSigningCertificateIssuerNameMatching(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("PROVA")
	sum := sha256.Sum256(content)
	ct := attr(t, oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
	md := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(sum[:]) })
	ess := func(issuer []byte, serial *big.Int) []byte {
		stub := &x509.Certificate{Raw: f.cert.Raw, RawIssuer: issuer, SerialNumber: serial}
		return attr(t, oidAttrSigningCertificateV2, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, crypto.SHA256, stub) })
	}
	utf8 := reencodeName(t, f.cert.RawIssuer, func(s string) string { return s })
	folded := reencodeName(t, f.cert.RawIssuer, func(s string) string { return "  " + strings.ToUpper(strings.ReplaceAll(s, " ", "   ")) + " " })
	other := reencodeName(t, f.cert.RawIssuer, func(s string) string { return s + " 2" })
	if bytes.Equal(utf8, f.cert.RawIssuer) {
		t.Fatal("the re-encoded name has the same bytes: the test needs another encoding")
	}
	one := big.NewInt(1)
	tests := []struct {
		name   string
		ess    []byte
		status policy.Status
	}{
		{"issuer as in the certificate", ess(f.cert.RawIssuer, f.cert.SerialNumber), policy.Valid},
		{"issuer in UTF8String, the certificate's in PrintableString", ess(utf8, f.cert.SerialNumber), policy.Valid},
		{"issuer in other case and white space", ess(folded, f.cert.SerialNumber), policy.Valid},
		{"another issuer", ess(other, f.cert.SerialNumber), policy.Invalid},
		{"another serial number", ess(utf8, new(big.Int).Add(f.cert.SerialNumber, one)), policy.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(craft(t, f, false, ct, md, tc.ess), VerifyOptions{Content: content, Validator: f.ca.validator()})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.status || (tc.status == policy.Invalid) != hasReason(v, CodeSigningCertificateMismatch) {
				t.Fatalf("got %s %v, want %s", v.Status, v.Reasons, tc.status)
			}
		})
	}
}

// reencodeName re-encodes a DER Name with every string value as a
// UTF8String transformed by f.
func reencodeName(t testing.TB, raw []byte, f func(string) string) []byte {
	t.Helper()
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &rdns); err != nil || len(rest) != 0 {
		t.Fatalf("name: %v", err)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, rdn := range rdns {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, atv := range rdn {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(atv.Type)
						b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(f(atv.Value.(string)))) })
					})
				}
			})
		}
	})
	return b.BytesOrPanic()
}

// TestSignerIdentifierIssuerNameMatching: the issuerAndSerialNumber of a
// SignerInfo is matched with the certificates as names (RFC 5280 7.1), as
// OpenSSL matches it, so a signer that re-encodes its issuer's name still
// finds its certificate; another name or serial does not.
func TestSignerIdentifierIssuerNameMatching(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("PROVA")
	sum := sha256.Sum256(content)
	ct := attr(t, oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
	md := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(sum[:]) })
	der := craft(t, f, false, ct, md)
	// The sid follows the certificates: its issuer is the last copy of the
	// name. The re-encodings keep the length, so no length changes.
	sid := bytes.LastIndex(der, f.cert.RawIssuer)
	withIssuer := func(name []byte) []byte {
		if len(name) != len(f.cert.RawIssuer) {
			t.Fatal("the re-encoded name must keep the length")
		}
		out := bytes.Clone(der)
		copy(out[sid:], name)
		return out
	}
	tests := []struct {
		name   string
		der    []byte
		status policy.Status
		code   policy.Code
	}{
		{"issuer as in the certificate", der, policy.Valid, ""},
		{"issuer in UTF8String", withIssuer(reencodeName(t, f.cert.RawIssuer, func(s string) string { return s })), policy.Valid, ""},
		{"issuer in upper case", withIssuer(reencodeName(t, f.cert.RawIssuer, strings.ToUpper)), policy.Valid, ""},
		{"another issuer", withIssuer(reencodeName(t, f.cert.RawIssuer, func(s string) string { return "X" + s[1:] })), policy.Indeterminate, policy.CodeSignerNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(tc.der, VerifyOptions{Content: content, Validator: f.ca.validator()})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.status || (tc.code != "" && !hasReason(v, tc.code)) {
				t.Fatalf("got %s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}
}
