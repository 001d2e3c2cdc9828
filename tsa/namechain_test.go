package tsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"
)

// TestTokenNameChainingVariants widens TestTokenNameChaining (the reported
// name-chaining case, docs/realworld.md) to every way a token and its TSA certificate reach the verifier:
// the signer identified by issuer and serial number or by subject key
// identifier, the TSA certificate in the token or only out of band
// (TSACertificates, --tsa-cert, in either order with the anchor), the
// policy engine and policy.Basic, and self-signed anchors that share the
// TSA's name, its name and key, its name, key, key identifier and serial
// number, or the issuing CA's name. The issuing CA is never known, so no
// combination may be VALID: an anchor is a trust anchor only when its DER
// is the certificate's or its key verifies the certificate's signature
// under the issuer name (RFC 5280 6.1), and the ESS signing-certificate
// attribute binds the token to one certificate, so an anchor found as the
// signer by key identifier is SIGNING_CERTIFICATE_MISMATCH
// (docs/realworld.md, "Token name chaining").
func TestTokenNameChainingVariants(t *testing.T) {
	now := time.Now()
	issuingKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	issuingCert := selfSignedCA(t, pkix.Name{CommonName: "issuing CA"}.ToRDNSequence(), issuingKey, nil, big.NewInt(3), false)
	tsaKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// RFC 3161 2.3: the only EKU, timeStamping, critical. A subject key
	// identifier, which pki.Issue does not write, for the SKI signer id.
	eku := []byte{0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "TSU 1", Country: []string{"CZ"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		SubjectKeyId:    []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
		ExtraExtensions: []pkix.Extension{{Id: []int{2, 5, 29, 37}, Critical: true, Value: eku}}}, issuingCert, tsaKey.Public(), issuingKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Key: StaticKey(tsaKey, []*x509.Certificate{leaf}), Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("filing")
	sum := sha256.Sum256(data)
	id, _ := HashOID(crypto.SHA256)
	r, _ := stamp(t, a, &Request{Hash: crypto.SHA256, HashOID: id, Digest: sum[:], CertReq: true})

	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var leafName pkix.RDNSequence
	if _, err := asn1.Unmarshal(leaf.RawSubject, &leafName); err != nil {
		t.Fatal(err)
	}
	anchors := []struct {
		name string
		cert *x509.Certificate
	}{
		{"the TSA's name", selfSignedCA(t, leafName, other, nil, big.NewInt(7), false)},
		{"the TSA's name and key", selfSignedCA(t, leafName, tsaKey, nil, big.NewInt(7), false)},
		{"the TSA's name, key, key identifier, serial and EKU", selfSignedCA(t, leafName, tsaKey, leaf.SubjectKeyId, leaf.SerialNumber, true)},
		{"the issuing CA's name", selfSignedCA(t, pkix.Name{CommonName: "issuing CA"}.ToRDNSequence(), other, leaf.AuthorityKeyId, big.NewInt(7), false)},
	}
	tokens := []struct {
		name string
		der  []byte
	}{
		{"issuer and serial, with the certificate", r.Token},
		{"issuer and serial, without certificates", withSignerID(t, r.Token, nil, true)},
		{"key identifier, with the certificate", withSignerID(t, r.Token, leaf.SubjectKeyId, false)},
		{"key identifier, without certificates", withSignerID(t, r.Token, leaf.SubjectKeyId, true)},
	}
	for _, an := range anchors {
		pool := x509.NewCertPool()
		pool.AddCert(an.cert)
		validators := []struct {
			name string
			v    policy.Validator
		}{{"engine", engineFor(t, policy.RevocationOff, nil, an.cert)}, {"basic", policy.Basic{Roots: pool}}}
		for _, tok := range tokens {
			for _, val := range validators {
				for _, extra := range []struct {
					name  string
					certs []*x509.Certificate
				}{{"none", nil}, {"TSA", []*x509.Certificate{leaf}}, {"anchor", []*x509.Certificate{an.cert}}, {"anchor, TSA", []*x509.Certificate{an.cert, leaf}}, {"TSA, anchor", []*x509.Certificate{leaf, an.cert}}} {
					_, v, err := Verify(tok.der, VerifyOptions{Validator: val.v, Data: data, TSACertificates: extra.certs})
					if err != nil {
						t.Fatalf("anchor %s, token %s, %s, TSA certificates %s: %v", an.name, tok.name, val.name, extra.name, err)
					}
					if v.Status == policy.Valid {
						t.Errorf("anchor with %s, token %s, %s, TSA certificates %s: VALID %v", an.name, tok.name, val.name, extra.name, v.Chain)
					}
				}
			}
		}
	}
}

// selfSignedCA makes a self-signed CA certificate with the given subject,
// key, subject key identifier and serial; eku adds timeStamping.
func selfSignedCA(t testing.TB, subject pkix.RDNSequence, key *ecdsa.PrivateKey, ski []byte, serial *big.Int, eku bool) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, SubjectKeyId: ski}
	raw, err := asn1.Marshal(subject)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.RawSubject = raw
	if eku {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withSignerID re-encodes a token with its SignerInfo identifying the
// signer by subject key identifier (ski; nil keeps issuer and serial) and,
// with dropCerts, without certificates. The signature covers the signed
// attributes only, so it still verifies.
func withSignerID(t testing.TB, tok, ski []byte, dropCerts bool) []byte {
	t.Helper()
	s := cryptobyte.String(tok)
	var ci, ctOID, explicit, sd, algs, eci, certs, sis, si, ias cryptobyte.String
	var ver, siVer int
	certsTag := cbasn1.Tag(0).Constructed().ContextSpecific()
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&ctOID, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.ReadASN1Integer(&ver) || !sd.ReadASN1Element(&algs, cbasn1.SET) || !sd.ReadASN1Element(&eci, cbasn1.SEQUENCE) {
		t.Fatal("not a SignedData")
	}
	hasCerts := sd.PeekASN1Tag(certsTag)
	if hasCerts && !sd.ReadASN1Element(&certs, certsTag) {
		t.Fatal("bad certificates")
	}
	if !sd.ReadASN1(&sis, cbasn1.SET) || !sis.ReadASN1(&si, cbasn1.SEQUENCE) || !si.ReadASN1Integer(&siVer) || !si.ReadASN1Element(&ias, cbasn1.SEQUENCE) {
		t.Fatal("bad SignerInfo")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(ctOID)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(3)
				b.AddBytes(algs)
				b.AddBytes(eci)
				if hasCerts && !dropCerts {
					b.AddBytes(certs)
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						if ski == nil {
							b.AddASN1Int64(1)
							b.AddBytes(ias)
						} else {
							b.AddASN1Int64(3) // RFC 5652 5.3: subjectKeyIdentifier means version 3
							b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ski) })
						}
						b.AddBytes(si) // digest algorithm, signed attributes, signature, unsigned attributes
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}
