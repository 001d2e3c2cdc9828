package policy

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// addCorpus seeds f with up to max files of OpenSSL's X.509 fuzzing corpus
// (beside the checked-in seeds in testdata/fuzz).
func addCorpus(f *testing.F, dir string, max int) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for i, e := range entries {
		if i >= max {
			break
		}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && len(b) < 1<<16 {
			f.Add(b)
		}
	}
}

// FuzzCertificateAndCRL runs untrusted bytes through everything of this
// package that parses certificates and CRLs: ParseCRL, the extension
// readers (names, name constraints, distribution points, QCStatements) and
// one path validation with the input as leaf, anchor and CRL.
func FuzzCertificateAndCRL(f *testing.F) {
	addCorpus(f, testtool.Vectors(f, "openssl-fuzz", "x509"), 300)
	root := issue(f, nil, tmpl("Fuzz root", true), nil)
	f.Add(root.cert.Raw)
	f.Add(root.crl(f, nil, testNow.Add(time.Hour)).RL.Raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		crl, _ := ParseCRL(data)
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return
		}
		parseDN(c.RawSubject)
		subjectAltNames(c)
		nameConstraintsExt(c)
		crlDistributionPoints(c)
		ParseQC(c)
		o := PathOptions{Anchors: []*x509.Certificate{root.cert, c}, Intermediates: []*x509.Certificate{c}, At: testNow}
		var crls []*CRL
		if crl != nil {
			crls = append(crls, crl)
		}
		findPath(c, o, &crlChecker{crls: crls, at: testNow, now: testNow, opts: o})
		o.Anchors = o.Anchors[:1]
		findPath(c, o, &crlChecker{crls: crls, at: testNow, now: testNow, opts: o})
	})
}

// FuzzTrustedList: reading a trusted list never panics and stays within its
// bounds (the XML and its signature alone: xmldsig.FuzzEnveloped).
func FuzzTrustedList(f *testing.F) {
	f.Add([]byte(`<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#"><SchemeInformation/></TrustServiceStatusList>`))
	f.Add([]byte(`<a xmlns:x="u"><x:b x:c="1">t&amp;</x:b></a>`))
	root := issue(f, nil, tmpl("Fuzz root", true), nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		LoadTrustedList(data, []*x509.Certificate{root.cert})
		TrustedListSigners(data)
	})
}

// FuzzOCSPResponse: checkOCSP (what every fetched OCSP response goes
// through) never panics, and accepts nothing as "good" or "revoked" that
// the issuer or its authorised responder did not sign for this certificate.
func FuzzOCSPResponse(f *testing.F) {
	root := issue(f, nil, tmpl("Fuzz OCSP root", true), nil)
	leaf := issue(f, root, tmpl("Fuzz OCSP leaf", false), nil)
	nonce := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, status := range []int{ocsp.Good, ocsp.Revoked, ocsp.Unknown} {
		tpl := ocsp.Response{Status: status, SerialNumber: leaf.cert.SerialNumber, ThisUpdate: testNow.Add(-time.Minute),
			NextUpdate: testNow.Add(time.Hour), RevokedAt: testNow.Add(-time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: oidOCSPNonce, Value: nonce}}}
		der, err := ocsp.CreateResponse(root.cert, root.cert, tpl, root.key)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x06}) // unauthorized
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := checkOCSP(data, leaf.cert, root.cert, nonce, testNow, testNow, nil)
		if err != nil {
			return
		}
		// Whatever was accepted speaks of this certificate.
		r, perr := ocsp.ParseResponseForCert(data, leaf.cert, root.cert)
		if perr != nil || r.SerialNumber.Cmp(leaf.cert.SerialNumber) != 0 {
			t.Fatalf("accepted (%+v) a response not about the leaf: %v", st, perr)
		}
	})
}

// v1CRLSeed is a version 1 CRL signed by ca (ECDSA with SHA-256) listing
// one serial, written by hand: crypto/x509 writes only v2.
func v1CRLSeed(f testing.TB, ca *testCA) []byte {
	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
		b.AddBytes(ca.cert.RawSubject)
		b.AddASN1UTCTime(testNow.Add(-time.Hour))
		b.AddASN1UTCTime(testNow.Add(time.Hour))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(7)
				b.AddASN1UTCTime(testNow.Add(-2 * time.Hour))
			})
		})
	})
	tbsDER := tbs.BytesOrPanic()
	h := sha256.Sum256(tbsDER)
	sig, err := ca.key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
		b.AddASN1BitString(sig)
	})
	return b.BytesOrPanic()
}

// FuzzCRLv1: the version 1 path of ParseCRL never panics, and whatever it
// accepts keeps the caller's bytes as the signed part (the inserted
// version never reaches a signature check) and carries no extensions.
func FuzzCRLv1(f *testing.F) {
	ca := issue(f, nil, tmpl("Fuzz v1 CRL CA", true), nil)
	seed := v1CRLSeed(f, ca)
	if c, err := ParseCRL(seed); err != nil || c.RL.CheckSignatureFrom(ca.cert) != nil || len(c.entries) != 1 {
		f.Fatalf("seed: %v", err)
	}
	f.Add(seed)
	f.Add(ca.crl(f, nil, testNow.Add(time.Hour)).RL.Raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		_, tbs, isV1 := v1CRL(data)
		c, err := ParseCRL(data)
		if err != nil || !isV1 {
			return
		}
		if !bytes.Equal(c.RL.Raw, data) || !bytes.Equal(c.RL.RawTBSRevocationList, tbs) || !bytes.Contains(data, tbs) {
			t.Fatal("a v1 CRL's signed bytes are not the input's")
		}
		if len(c.RL.Extensions) > 0 {
			t.Fatal("a v1 CRL with extensions was accepted")
		}
	})
}
