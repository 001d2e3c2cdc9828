package xmldsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
)

// FuzzEnveloped: parsing, canonicalizing and checking the enveloped
// signature of any bytes never panics and stays within the bounds of
// doc.go; what parses canonicalizes, with and without comments, as a whole
// document and as the document element's subtree, to a document that parses
// again to the same canonical form (canonical XML is a fixed point); the
// form without comments is the form with comments without them, and the
// subtree's form is the document's without the PIs around it.
func FuzzEnveloped(f *testing.F) {
	f.Add([]byte(`<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#"><SchemeInformation/></TrustServiceStatusList>`))
	f.Add([]byte(`<a xmlns:x="u:x"><x:b x:c="1">t&amp;</x:b></a>`))
	f.Add([]byte("<a v=\"\t\r\n&#x9;\"><!--\t--><![CDATA[\t]]><?p \t?></a>"))
	f.Add([]byte("\xef\xbb\xbf<?xml version=\"1.0\"?>\n<?xml-stylesheet href=\"s.xsl\"?><!--c-->\r\n<a xmlns=\"urn:d\"><b xmlns=\"\"><?pi \r\nx ?></b></a>\n<!--e--><?end?>"))
	f.Add([]byte(`<a xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><?p?><ds:Signature><?q?><!--r--></ds:Signature></a>`))
	// References: to the document element's Id with the enveloped
	// transform and a PI outside, without a URI, to an Id used twice.
	f.Add([]byte(`<?s?><a Id="r" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI="#r"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference><ds:Reference><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/></ds:Reference></ds:SignedInfo></ds:Signature></a>`))
	f.Add([]byte(`<a Id="r" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><b Id="x"/><ds:Signature Id="x"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI="#x"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms></ds:Reference></ds:SignedInfo></ds:Signature></a>`))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	signers := []*x509.Certificate{testSigner(f, key)}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Parse(data)
		if err != nil {
			return
		}
		_ = VerifyEnveloped(n, signers)
		_, _ = KeyInfoCertificates(n)
		_ = CanonicalizeDocument(n, n.Child(NSDSig, "Signature"))
		stable := func(c []byte, comments bool) {
			t.Helper()
			m, err := Parse(c)
			if err != nil {
				t.Fatalf("the canonical form does not parse: %v\n%q", err, c)
			}
			if c2 := canonicalize(m, nil, true, comments); !bytes.Equal(c2, c) {
				t.Fatalf("canonical form not stable (comments %v):\n%q\n%q", comments, c, c2)
			}
		}
		sub := Canonicalize(n, nil)
		stable(sub, false)
		doc := CanonicalizeDocument(n, nil)
		stable(doc, false)
		with := canonicalize(n, nil, true, true)
		stable(with, true)
		if !bytes.Contains(doc, sub) {
			t.Fatalf("the document's form %q lacks the subtree's %q", doc, sub)
		}
		if m, _ := Parse(with); !bytes.Equal(CanonicalizeDocument(m, nil), doc) {
			t.Fatalf("without comments %q is not the form with comments %q without them", doc, with)
		}
	})
}
