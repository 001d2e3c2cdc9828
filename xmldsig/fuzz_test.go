package xmldsig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
)

// FuzzEnveloped: parsing, canonicalizing and checking the enveloped
// signature of any bytes never panics and stays within the bounds of
// doc.go; what parses canonicalizes to a document that parses again to the
// same canonical form.
func FuzzEnveloped(f *testing.F) {
	f.Add([]byte(`<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#"><SchemeInformation/></TrustServiceStatusList>`))
	f.Add([]byte(`<a xmlns:x="u"><x:b x:c="1">t&amp;</x:b></a>`))
	f.Add([]byte("<a v=\"\t\r\n&#x9;\"><!--\t--><![CDATA[\t]]><?p \t?></a>"))
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
		c := Canonicalize(n, nil)
		_ = VerifyEnveloped(n, signers)
		_, _ = KeyInfoCertificates(n)
		m, err := Parse(c)
		if err != nil {
			t.Fatalf("the canonical form does not parse: %v\n%s", err, c)
		}
		if c2 := Canonicalize(m, nil); string(c2) != string(c) {
			t.Fatalf("canonical form not stable:\n%s\n%s", c, c2)
		}
	})
}
