package xmldsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestParseRefused: Parse refuses what is not one well-formed document
// within the bounds of doc.go, and takes a document at the bounds.
func TestParseRefused(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(strings.Repeat("<a>", n) + strings.Repeat("</a>", n))
	}
	flat := func(n int) []byte {
		return []byte("<r>" + strings.Repeat("<a/>", n-1) + "</r>")
	}
	// misc has n PIs and comments, half of them around the document element.
	misc := func(n int) []byte {
		return []byte(strings.Repeat("<?p?>", n/4) + strings.Repeat("<!---->", n/4) + "<r>" +
			strings.Repeat("<?p?>", n/4) + strings.Repeat("<!---->", n-3*(n/4)) + "</r>")
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"at the depth bound", nest(MaxDepth), nil},
		{"one deeper", nest(MaxDepth + 1), ErrMalformedXML},
		{"100000 deep", nest(100000), ErrMalformedXML},
		{"at the element bound", flat(MaxElements), nil},
		{"one element more", flat(MaxElements + 1), ErrMalformedXML},
		{"at the PI and comment bound", misc(MaxPIsAndComments), nil},
		{"one PI or comment more", misc(MaxPIsAndComments + 1), ErrMalformedXML},
		{"the XML declaration is not counted", append([]byte(`<?xml version="1.0"?>`), misc(MaxPIsAndComments)...), nil},
		{"DOCTYPE with entities", []byte(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><a>&lol2;</a>`), ErrMalformedXML},
		{"bare DOCTYPE", []byte(`<!DOCTYPE a><a/>`), ErrMalformedXML},
		{"mismatched end tag", []byte(`<a><b></a></b>`), ErrMalformedXML},
		{"end tag of another prefix", []byte(`<x:a xmlns:x="u" xmlns:y="u"></y:a>`), ErrMalformedXML},
		{"two document elements", []byte(`<a/><b/>`), ErrMalformedXML},
		{"unclosed", []byte(`<a><b/>`), ErrMalformedXML},
		{"empty", nil, ErrMalformedXML},
		{"not XML", []byte("\x00\x01garbage"), ErrMalformedXML},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestCanonicalizeMatchesXmllint: Canonicalize gives what libxml2's
// exclusive C14N (xmllint --exc-c14n) gives for the same document:
// namespace declarations only where visibly used, sorted, attributes
// sorted by namespace URI, escapes, empty elements expanded.
func TestCanonicalizeMatchesXmllint(t *testing.T) {
	xmllint := testtool.Require(t, "xmllint")
	docs := []struct{ name, doc string }{
		{"empty element", `<a/>`},
		{"unused declarations dropped", `<a xmlns:x="urn:x" xmlns:y="urn:y"><b>t</b></a>`},
		{"declaration moved to its use", `<a xmlns:x="urn:x"><b><x:c>t</x:c></b></a>`},
		{"declaration repeated in siblings", `<a xmlns:x="urn:x"><x:b/><x:c/></a>`},
		{"default namespace", `<a xmlns="urn:d"><b xmlns=""/><c/></a>`},
		{"prefixed attributes sorted by URI", `<a xmlns:z="urn:a" xmlns:b="urn:z" b:k="1" z:k="2" k="3" c="4"/>`},
		{"declarations sorted", `<x:a xmlns:y="urn:y" xmlns:x="urn:x" y:q="1"/>`},
		{"escapes in text", `<a>&lt;&amp;&gt;"'` + "\r\n" + `x</a>`},
		{"escapes in attributes", `<a v="&lt;&amp;&gt;&quot;'&#9;&#10;&#13;"/>`},
		{"character references", `<a>&#xE9;&#x10FFFF;</a>`},
		{"redeclared prefix", `<x:a xmlns:x="urn:1"><x:b xmlns:x="urn:2"><x:c/></x:b></x:a>`},
		{"xml:lang kept", `<a xml:lang="en"><b/></a>`},
		// XML 1.0 section 3.3.3: a literal tab, LF, CR or CRLF in an
		// attribute value reads as one space; a character reference keeps
		// the character (see docs/security.md, "Trusted lists").
		{"literal tab in attribute", "<a v=\"x\ty\"/>"},
		{"literal LF in attribute", "<a v=\"x\ny\"/>"},
		{"literal CR in attribute", "<a v=\"x\ry\"/>"},
		{"literal CRLF in attribute", "<a v='x\r\ny' w=\"\r\n\"/>"},
		{"references in attribute stay", `<a v="x&#x9;y&#xA;z&#xD;w"/>`},
		{"literal whitespace in text stays", "<a v=\"\t\">\t<![CDATA[ v=\"\t\" ]]>\t</a>"},
		{"signature-like", `<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Id="tsl" TSLTag="http://uri.etsi.org/19612/TSLTag"><SchemeInformation><TSLVersionIdentifier>5</TSLVersionIdentifier></SchemeInformation><ds:Signature Id="s"><ds:SignedInfo/></ds:Signature></TrustServiceStatusList>`},
	}
	dir := t.TempDir()
	for _, tc := range docs {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dir, "doc.xml")
			if err := os.WriteFile(f, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			want, err := exec.Command(xmllint, "--nonet", "--exc-c14n", f).Output()
			if err != nil {
				t.Fatalf("xmllint: %v", err)
			}
			if got := Canonicalize(n, nil); !bytes.Equal(got, want) {
				t.Fatalf("Canonicalize:\n%s\nxmllint --exc-c14n:\n%s", got, want)
			}
		})
	}
}

// TestCanonicalizeSkip: the skipped element (the enveloped signature) is
// left out, and nothing else.
func TestCanonicalizeSkip(t *testing.T) {
	n, err := Parse([]byte(`<a xmlns:ds="` + NSDSig + `">x<ds:Signature><ds:SignedInfo/></ds:Signature>y<b/></a>`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(Canonicalize(n, n.Child(NSDSig, "Signature"))), `<a>xy<b></b></a>`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestNormalizeAttrWhitespace: only quoted attribute values inside tags
// change; comments, CDATA, processing instructions, text and whatever
// follows a directive stay byte for byte (xmllint --exc-c14n keeps
// comments, so TestCanonicalizeMatchesXmllint cannot hold this).
func TestNormalizeAttrWhitespace(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"tab LF CR CRLF", "<a v=\"1\t2\n3\r4\r\n5\"/>", `<a v="1 2 3 4 5"/>`},
		{"single quotes hold a double one", "<a v='\"\t'\tw=\"'\n\"/>", "<a v='\" '\tw=\"' \"/>"},
		{"end tag and text", "<a>\t\n</a\t>", "<a>\t\n</a\t>"},
		{"comment", "<a><!-- <b v=\"\t\"/> --></a>", "<a><!-- <b v=\"\t\"/> --></a>"},
		{"CDATA", "<a><![CDATA[<b v=\"\t\"/>]]></a>", "<a><![CDATA[<b v=\"\t\"/>]]></a>"},
		{"processing instruction", "<?pi v=\"\t\"?><a v=\"\t\"/>", "<?pi v=\"\t\"?><a v=\" \"/>"},
		{"directive left to the parser", "<!DOCTYPE a [<!ENTITY e \"\t\">]><a v=\"\t\"/>", "<!DOCTYPE a [<!ENTITY e \"\t\">]><a v=\"\t\"/>"},
		{"unterminated", "<a v=\"\t", "<a v=\" "},
		{"unterminated comment", "<!-- \t", "<!-- \t"},
		{"references untouched", `<a v="&#x9;&#xA;&#xD;"/>`, `<a v="&#x9;&#xA;&#xD;"/>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(normalizeAttrWhitespace([]byte(tc.in))); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func mustParse(t testing.TB, data []byte) *Node {
	t.Helper()
	n, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testSigner is a self-signed certificate with its key.
func testSigner(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xmldsig test signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signedDoc is a document with an enveloped signature template; the
// SignedInfo is si with the whole-document reference, extra after it.
func signedDoc(sigMethod, canon, extra, content string) string {
	return `<doc xmlns="urn:doc" xmlns:ds="` + NSDSig + `" Id="root">` + content +
		`<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="` + canon + `"/>` +
		`<ds:SignatureMethod Algorithm="` + sigMethod + `"/>` +
		`<ds:Reference URI=""><ds:Transforms><ds:Transform Algorithm="` + algEnveloped + `"/>` +
		`<ds:Transform Algorithm="` + algExcC14N + `"/></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="` + algDigSHA256 + `"/><ds:DigestValue></ds:DigestValue></ds:Reference>` + extra +
		`</ds:SignedInfo><ds:SignatureValue></ds:SignatureValue></ds:Signature></doc>`
}

// signECDSA signs doc (a signedDoc with an ECDSA-SHA256 method) the way
// ResignEnveloped signs with RSA, writing the value as r || s.
func signECDSA(t *testing.T, doc string, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	root, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(CanonicalizeDocument(root, root.Child(NSDSig, "Signature")))
	out := []byte(strings.Replace(doc, "<ds:DigestValue></ds:DigestValue>", "<ds:DigestValue>"+base64.StdEncoding.EncodeToString(d[:])+"</ds:DigestValue>", 1))
	if root, err = Parse(out); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(Canonicalize(root.Child(NSDSig, "Signature").Child(NSDSig, "SignedInfo"), nil))
	der, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	rs.R.FillBytes(raw[:32])
	rs.S.FillBytes(raw[32:])
	return bytes.Replace(out, []byte("<ds:SignatureValue></ds:SignatureValue>"), []byte("<ds:SignatureValue>"+base64.StdEncoding.EncodeToString(raw)+"</ds:SignatureValue>"), 1)
}

// TestVerifyEnveloped: a document signed with RSA or ECDSA verifies with
// its signer's certificate; every change, another key and every form
// outside the supported set is refused with ErrSignature.
func TestVerifyEnveloped(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert, ecCert, otherCert := testSigner(t, rsaKey), testSigner(t, ecKey), testSigner(t, otherKey)
	rsaSign := func(doc string) []byte {
		out, err := ResignEnveloped([]byte(doc), rsaKey)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	const content = `<item n="1">one</item><item n="2">two</item>`
	good := rsaSign(signedDoc(algRSASHA256, algExcC14N, "", content))
	goodEC := signECDSA(t, signedDoc(algECDSA256, algExcC14N, "", content), ecKey)
	// The ECDSA value a byte short is refused by its length before any
	// curve arithmetic.
	sv, err := base64.StdEncoding.DecodeString(mustParse(t, goodEC).Child(NSDSig, "Signature").Child(NSDSig, "SignatureValue").Text())
	if err != nil {
		t.Fatal(err)
	}
	ecCut := bytes.Replace(goodEC, []byte(base64.StdEncoding.EncodeToString(sv)), []byte(base64.StdEncoding.EncodeToString(sv[1:])), 1)
	fragRef := `<ds:Reference URI="#nope"><ds:DigestMethod Algorithm="` + algDigSHA256 + `"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference>`
	tests := []struct {
		name    string
		data    []byte
		signers []*x509.Certificate
		want    string // "" verifies; else a part of the message
	}{
		{"RSA", good, []*x509.Certificate{rsaCert}, ""},
		{"ECDSA", goodEC, []*x509.Certificate{ecCert}, ""},
		{"the signer among others", goodEC, []*x509.Certificate{otherCert, rsaCert, ecCert}, ""},
		{"another key", goodEC, []*x509.Certificate{otherCert}, "does not verify"},
		{"an RSA signature for an ECDSA key", good, []*x509.Certificate{ecCert}, "does not verify"},
		{"no signers", good, nil, "does not verify"},
		{"content changed", bytes.Replace(good, []byte("two"), []byte("tw0"), 1), []*x509.Certificate{rsaCert}, "digest of reference"},
		{"SignedInfo changed", bytes.Replace(good, []byte(`<ds:Reference URI="">`), []byte(`<ds:Reference URI="" Id="r">`), 1), []*x509.Certificate{rsaCert}, "does not verify"},
		{"ECDSA value a byte short", ecCut, []*x509.Certificate{ecCert}, "does not verify"},
		{"inclusive C14N", rsaSign(signedDoc(algRSASHA256, "http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "", content)), []*x509.Certificate{rsaCert}, "canonicalization"},
		{"RSA-SHA1", rsaSign(signedDoc("http://www.w3.org/2000/09/xmldsig#rsa-sha1", algExcC14N, "", content)), []*x509.Certificate{rsaCert}, "signature method"},
		{"a reference not found", rsaSign(signedDoc(algRSASHA256, algExcC14N, fragRef, content)), []*x509.Certificate{rsaCert}, "not found"},
		{"too many references", rsaSign(signedDoc(algRSASHA256, algExcC14N, strings.Repeat(strings.Replace(fragRef, "#nope", "#root", 1), MaxReferences), content)), []*x509.Certificate{rsaCert}, "references"},
		{"XPath transform", rsaSign(strings.Replace(signedDoc(algRSASHA256, algExcC14N, "", content), algEnveloped, "http://www.w3.org/TR/1999/REC-xpath-19991116", 1)), []*x509.Certificate{rsaCert}, "transform"},
		{"SHA-1 digest", rsaSign(strings.Replace(signedDoc(algRSASHA256, algExcC14N, "", content), algDigSHA256, "http://www.w3.org/2000/09/xmldsig#sha1", 1)), []*x509.Certificate{rsaCert}, "digest method"},
		{"two signatures", bytes.Replace(good, []byte("</doc>"), []byte(`<ds:Signature/></doc>`), 1), []*x509.Certificate{rsaCert}, "exactly one"},
		{"no signature", []byte(`<doc/>`), []*x509.Certificate{rsaCert}, "exactly one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Parse(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyEnveloped(root, tc.signers)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrSignature with %q", err, tc.want)
			}
		})
	}
}

// TestVerifyRealTrustedList: the real Czech trusted list (enveloped,
// exclusive C14N, RSA-SHA256, written by another implementation) verifies
// with the certificate of its KeyInfo, and not after a byte changed.
func TestVerifyRealTrustedList(t *testing.T) {
	data, err := os.ReadFile(testtool.Vectors(t, "trusted-lists", "CZ.xml"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := KeyInfoCertificates(root)
	if err != nil || len(certs) == 0 {
		t.Fatalf("KeyInfo certificates: %d, %v", len(certs), err)
	}
	if err := VerifyEnveloped(root, certs); err != nil {
		t.Fatal(err)
	}
	changed, err := Parse(bytes.Replace(data, []byte("PostSignum"), []byte("PostSignun"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyEnveloped(changed, certs); !errors.Is(err, ErrSignature) {
		t.Fatalf("changed list: %v", err)
	}
}
