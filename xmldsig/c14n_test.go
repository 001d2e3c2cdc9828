package xmldsig

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// xmllintC14N returns libxml2's exclusive canonical form of doc (xmllint
// --exc-c14n, which keeps comments: the #WithComments variant), or an
// error when libxml2 refuses the document.
func xmllintC14N(t *testing.T, doc string) ([]byte, error) {
	t.Helper()
	xmllint := testtool.Require(t, "xmllint")
	f := filepath.Join(t.TempDir(), "doc.xml")
	if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return exec.Command(xmllint, "--nonet", "--exc-c14n", f).Output()
}

// stripComments removes the comments of doc, leaving CDATA sections and
// processing instructions (where "<!--" is data) alone: canonicalization
// without comments is canonicalization with comments of the document
// without its comment nodes, which is how the tests get libxml2's form
// without comments (xmllint has no option for it).
func stripComments(doc string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(doc, '<')
		if i < 0 {
			b.WriteString(doc)
			return b.String()
		}
		b.WriteString(doc[:i])
		doc = doc[i:]
		end, keep := "", true
		switch {
		case strings.HasPrefix(doc, "<!--"):
			end, keep = "-->", false
		case strings.HasPrefix(doc, "<![CDATA["):
			end = "]]>"
		case strings.HasPrefix(doc, "<?"):
			end = "?>"
		default:
			b.WriteByte('<')
			doc = doc[1:]
			continue
		}
		k := strings.Index(doc, end)
		if k < 0 {
			b.WriteString(doc) // malformed: the parsers refuse it
			return b.String()
		}
		if keep {
			b.WriteString(doc[:k+len(end)])
		}
		doc = doc[k+len(end):]
	}
}

// c14nDocs are documents whose exclusive canonical form the tests take
// from libxml2: every node type of the XPath data model in the places the
// spec treats apart (docs: xmldsig/doc.go).
var c14nDocs = []struct{ name, doc string }{
	// Processing instructions: kept everywhere; one before the document
	// element is followed by #xA, one after it preceded by #xA; the XML
	// declaration is no PI and goes.
	{"PI before the document element", `<?xml-stylesheet type="text/xsl" href="s.xsl"?><a/>`},
	{"XML declaration dropped, PI kept", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<?xml-stylesheet href=\"s.xsl\"?>\n<a/>"},
	{"XML declaration with standalone", `<?xml version='1.0' standalone='yes'?><a/>`},
	{"PIs before and after", "<?p1 x?><?p2?>\n<a/>\n<?p3 y?>\n\n<?p4?>\n"},
	{"PIs inside", `<a>t<?pi data?>u<b><?pi?></b><?pi x?></a>`},
	{"PI without data", `<a><?pi?><?pi    ?><?pi` + "\n\t" + `?></a>`},
	{"PI target case", `<a><?PI x?><?Pi x?><?pi x?><?xml-Stylesheet x?><?xmlfoo x?></a>`},
	{"whitespace in PI data", "<a><?pi \t\n  lead  inner\t\ttrail \t?><?pi\n\nx\r\ny\rz\r\n?></a>"},
	{"PI data is not escaped", `<a><?pi <b>&amp;"'>?></a>`},
	{"PI data with <!--", `<a><?pi <!-- x -->?></a>`},
	// Comments, in the same places.
	{"comments before and after", "<!--c1--><!--c2-->\n<a/>\n<!--c3-->"},
	{"comments inside", `<a><!--x-->t<!-- <b/> &amp; --><b><!----></b></a>`},
	{"comment line ends", "<a><!--\r\n\r--></a>"},
	{"PIs and comments mixed", "<?pi a?><!--c--><a><!--i--><?pi i?></a><!--d--><?pi b?>"},
	{"whitespace and BOM outside the document element", "\xef\xbb\xbf<?xml version=\"1.0\"?>\n\t <a/> \n\t"},
	// Character data.
	{"CDATA", `<a><![CDATA[<b>&amp; ]] > "' ]]></a>`},
	{"CDATA with line ends", "<a><![CDATA[x\r\ny\rz]]></a>"},
	{"CDATA next to text", `<a>x<![CDATA[y]]>z<![CDATA[]]></a>`},
	{"character references", `<a>&#xD;&#13;&#xA;&#x9;&#x3C;&#62;&#x26;&#x22;&#x27;&#xE9;&#x10FFFF;</a>`},
	{"CR reference before a line end", "<a>&#13;\n&#13;\r\n</a>"},
	{"text line ends", "<a>x\r\ny\rz\n</a>"},
	// Attribute values: literal whitespace reads as a space, references keep
	// their character, and the escapes are the spec's.
	{"attribute references", `<a v="&#x9;&#xA;&#xD;&#x3C;&#x26;&#x22;&#x27;&#x3E;"/>`},
	{"attribute literal whitespace", "<a v=\"a\tb\nc\rd\r\ne\" w='\t\"'/>"},
	{"attribute escapes", `<a x="&lt;&amp;&gt;&quot;&apos;" y='"' z="'"/>`},
	// Namespaces: declarations only where visibly utilized.
	{"default namespace undeclared", `<a xmlns="urn:d"><b xmlns=""><c/></b></a>`},
	{"xmlns=\"\" where no default was rendered", `<x:a xmlns:x="urn:x" xmlns="urn:d"><b xmlns=""/></x:a>`},
	{"default declared deeper", `<a xmlns:d="urn:d"><b xmlns="urn:d"><d:c/></b></a>`},
	{"default redeclared to the same", `<a xmlns="urn:d"><b xmlns="urn:d"/></a>`},
	{"prefix used only by an attribute", `<a xmlns:x="urn:x"><b x:k="v"/><c/></a>`},
	{"two prefixes for one URI", `<a xmlns:x="urn:x" xmlns:y="urn:x"><x:b y:c="1"/></a>`},
	{"xml prefix never declared", `<a xmlns:xml="http://www.w3.org/XML/1998/namespace" xml:lang="cs"><xml:b xml:space="preserve"/></a>`},
	{"prefixed and default attributes sorted", `<a xmlns="urn:d" xmlns:z="urn:a" xmlns:b="urn:z" b:k="1" z:k="2" k="3" c="4" xml:lang="x"/>`},
	// Empty elements.
	{"empty elements", `<a><b/><c></c><d xmlns=""/><e a="1" /></a>`},
}

// TestCanonicalizeDocumentMatchesXmllint: the exclusive canonical form of
// each document, without comments (CanonicalizeDocument, what a
// same-document reference digests) and with them (the #WithComments
// variant), is libxml2's byte for byte.
func TestCanonicalizeDocumentMatchesXmllint(t *testing.T) {
	for _, tc := range c14nDocs {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			with, err := xmllintC14N(t, tc.doc)
			if err != nil {
				t.Fatalf("xmllint: %v", err)
			}
			if got := canonicalize(n, nil, true, true); !bytes.Equal(got, with) {
				t.Errorf("with comments:\n%q\nxmllint --exc-c14n:\n%q", got, with)
			}
			without, err := xmllintC14N(t, stripComments(tc.doc))
			if err != nil {
				t.Fatalf("xmllint: %v", err)
			}
			if got := CanonicalizeDocument(n, nil); !bytes.Equal(got, without) {
				t.Errorf("without comments:\n%q\nxmllint --exc-c14n of the document without comments:\n%q", got, without)
			}
		})
	}
}

// TestCanonicalizeSubtree: the canonical form of an element's subtree (a
// "#id" reference, SignedInfo) has the PIs inside it, not those around the
// document element, and no comments unless asked.
func TestCanonicalizeSubtree(t *testing.T) {
	root := mustParse(t, []byte(`<?top?><!--c--><a xmlns:x="urn:x"><?in a?><x:b><!--d--><?pi?>t</x:b></a><?end?>`))
	for _, tc := range []struct {
		name     string
		n        *Node
		comments bool
		want     string
	}{
		{"document element", root, false, `<a><?in a?><x:b xmlns:x="urn:x"><?pi?>t</x:b></a>`},
		{"document element with comments", root, true, `<a><?in a?><x:b xmlns:x="urn:x"><!--d--><?pi?>t</x:b></a>`},
		{"inner element", root.Elements()[0], false, `<x:b xmlns:x="urn:x"><?pi?>t</x:b>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			if tc.comments {
				got = canonicalize(tc.n, nil, false, true)
			} else {
				got = Canonicalize(tc.n, nil)
			}
			if string(got) != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCanonicalizeNamespaceURIEscaped: a namespace declaration is written
// as an attribute is, "&" as "&amp;" (Canonical XML 1.0 section 2.3,
// "Namespace Nodes"). libxml2 writes the URI as it is, which is not even
// well-formed XML; it is the one difference from libxml2 kept (doc.go).
func TestCanonicalizeNamespaceURIEscaped(t *testing.T) {
	n := mustParse(t, []byte(`<x:a xmlns:x="u:q?b=1&amp;c=2"/>`))
	if got, want := string(CanonicalizeDocument(n, nil)), `<x:a xmlns:x="u:q?b=1&amp;c=2"></x:a>`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// reSignature is the enveloped signature element of a test document.
var reSignature = regexp.MustCompile(`(?s)<ds:Signature\b.*</ds:Signature>`)

// TestCanonicalizeSkipMatchesXmllint: the enveloped-signature transform
// leaves out the signature with the PIs and comments inside it and nothing
// else: the form is libxml2's of the document without the signature.
func TestCanonicalizeSkipMatchesXmllint(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"PI inside the signature", `<?pi a?><a xmlns:ds="` + NSDSig + `">x<?pi b?><ds:Signature><?pi c?><ds:SignedInfo><?pi d?></ds:SignedInfo></ds:Signature><?pi e?>y</a><?pi f?>`},
		{"comment inside the signature", `<!--a--><a xmlns:ds="` + NSDSig + `"><!--b--><ds:Signature><!--c--></ds:Signature><!--d--></a><!--e-->`},
		{"signature is the last child", `<a xmlns:ds="` + NSDSig + `"><b/><ds:Signature><?pi?></ds:Signature></a>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := mustParse(t, []byte(tc.doc))
			sig := root.Child(NSDSig, "Signature")
			if sig == nil {
				t.Fatal("no signature")
			}
			rest := reSignature.ReplaceAllString(tc.doc, "")
			with, err := xmllintC14N(t, rest)
			if err != nil {
				t.Fatalf("xmllint: %v", err)
			}
			if got := canonicalize(root, sig, true, true); !bytes.Equal(got, with) {
				t.Errorf("with comments:\n%q\nxmllint:\n%q", got, with)
			}
			without, err := xmllintC14N(t, stripComments(rest))
			if err != nil {
				t.Fatalf("xmllint: %v", err)
			}
			if got := CanonicalizeDocument(root, sig); !bytes.Equal(got, without) {
				t.Errorf("without comments:\n%q\nxmllint:\n%q", got, without)
			}
		})
	}
}

// TestParseRefusesAsXmllint: what is not a namespace-well-formed XML 1.0
// document, or has no canonical form (a relative or malformed namespace
// URI), is refused; libxml2 refuses the same documents (fails to
// canonicalize them) except where it only reports a namespace error and
// goes on (xmllint false): pecet refuses those too rather than digest a
// name whose namespace is unknown.
func TestParseRefusesAsXmllint(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		xmllint   bool // libxml2 refuses it too
	}{
		{"XML declaration inside", `<a><?xml version="1.0"?></a>`, true},
		{"XML declaration after the element", `<a/><?xml version="1.0"?>`, true},
		{"XML declaration after whitespace", ` <?xml version="1.0"?><a/>`, true},
		{"XML declaration after a PI", `<?pi?><?xml version="1.0"?><a/>`, true},
		{"malformed XML declaration", `<?xml foo="1"?><a/>`, true},
		{"XML declaration without version", `<?xml encoding="UTF-8"?><a/>`, true},
		{"XML declaration with an empty version", `<?xml version=""?><a/>`, true},
		{"PI target XML", `<a><?XML x?></a>`, true},
		{"PI target xMl", `<?xMl?><a/>`, true},
		{"PI target with a colon", `<a><?a:b x?></a>`, false},
		{"control character in a PI", "<a><?pi \x01?></a>", true},
		{"control character in a comment", "<a><!--\x01--></a>", true},
		{"invalid UTF-8 in a comment", "<a><!--\xff--></a>", true},
		{"text before the document element", `x<a/>`, true},
		{"text after the document element", `<a/>x`, true},
		{"reference after the document element", `<a/>&#32;`, true},
		{"CDATA after the document element", `<a/><![CDATA[ ]]>`, true},
		{"BOM after the document element", "<a/>\xef\xbb\xbf", true},
		{"duplicate attribute", `<a k="1" k="2"/>`, true},
		{"duplicate prefixed attribute", `<a xmlns:x="urn:x" x:k="1" x:k="2"/>`, true},
		{"duplicate attribute by namespace", `<a xmlns:x="urn:x" xmlns:y="urn:x" x:k="1" y:k="2"/>`, false},
		{"duplicate namespace declaration", `<a xmlns:x="urn:a" xmlns:x="urn:b"/>`, true},
		{"duplicate default declaration", `<a xmlns="urn:a" xmlns="urn:b"/>`, true},
		{"unbound element prefix", `<x:a/>`, false},
		{"unbound attribute prefix", `<a x:k="1"/>`, false},
		{"prefix bound outside its scope", `<a><b xmlns:x="urn:x"/><x:c/></a>`, false},
		{"element name with a leading colon", `<:a/>`, false},
		{"empty prefixed declaration", `<a xmlns:x=""/>`, false},
		{"relative default namespace", `<a xmlns="rel"/>`, true},
		{"relative namespace, unused", `<a xmlns:x="rel/x"/>`, true},
		{"namespace URI with a space", `<a xmlns="urn:a b"/>`, true},
		{"namespace URI with a bad escape", `<a xmlns:x="u:%zz"/>`, true},
		{"namespace URI with two fragments", `<a xmlns:x="u:x#a#b"/>`, true},
		{"namespace URI scheme starting with a digit", `<a xmlns:x="1u:x"/>`, true},
		{"xml prefix bound elsewhere", `<a xmlns:xml="urn:x"/>`, false},
		{"xmlns prefix declared", `<a xmlns:xmlns="urn:x"/>`, false},
		{"xml namespace for another prefix", `<a xmlns:x="http://www.w3.org/XML/1998/namespace"/>`, false},
		{"xmlns namespace as the default", `<a xmlns="http://www.w3.org/2000/xmlns/"/>`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.doc)); !errors.Is(err, ErrMalformedXML) {
				t.Errorf("Parse: err = %v, want ErrMalformedXML", err)
			}
			if _, err := xmllintC14N(t, tc.doc); (err != nil) != tc.xmllint {
				t.Errorf("xmllint refuses: %v, want %v", err != nil, tc.xmllint)
			}
		})
	}
}

// TestCanonicalizeAcceptsAsXmllint: namespace URIs and PI targets at the
// edge of what is refused parse, and canonicalize as libxml2 does.
func TestCanonicalizeAcceptsAsXmllint(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"scheme with + - .", `<x:a xmlns:x="u+x.-:x"/>`},
		{"URI with escapes, query and fragment", `<x:a xmlns:x="http://h.example:80/p%20q;r?s=t;u#f"/>`},
		{"URN with reserved characters", `<x:a xmlns:x="urn:x:!$'()*+,;=:@/?"/>`},
		{"xmlns namespace never declared", `<a xmlns:xml="http://www.w3.org/XML/1998/namespace"/>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			want, err := xmllintC14N(t, tc.doc)
			if err != nil {
				t.Fatalf("xmllint: %v", err)
			}
			if got := CanonicalizeDocument(n, nil); !bytes.Equal(got, want) {
				t.Fatalf("got %q, xmllint %q", got, want)
			}
		})
	}
}

// signWithOpenSSL signs doc, which has an empty RSA-SHA256 signature
// template (signedDoc), without this package's canonicalization: the digest
// is over libxml2's canonical form of the document without its signature,
// and openssl signs libxml2's canonical form of the SignedInfo (taken out
// with the one namespace it uses, which is its exclusive form in place).
func signWithOpenSSL(t *testing.T, doc string, keyFile string) []byte {
	t.Helper()
	return signWithOpenSSLOver(t, doc, keyFile, false)
}

// reDocElement is the document element of a test document (signedDoc).
var reDocElement = regexp.MustCompile(`(?s)<doc\b.*</doc>`)

// signWithOpenSSLOver is signWithOpenSSL, with the digest over libxml2's
// canonical form of the document element alone (without its signature,
// and without what is around it) when element is true: what a reference
// URI="#id" to the document element with the enveloped-signature transform
// covers.
func signWithOpenSSLOver(t *testing.T, doc string, keyFile string, element bool) []byte {
	t.Helper()
	rest := reSignature.ReplaceAllString(doc, "")
	if element {
		rest = reDocElement.FindString(rest)
	}
	c, err := xmllintC14N(t, rest)
	if err != nil {
		t.Fatalf("xmllint: %v", err)
	}
	d := sha256.Sum256(c)
	doc = strings.Replace(doc, "<ds:DigestValue></ds:DigestValue>", "<ds:DigestValue>"+base64.StdEncoding.EncodeToString(d[:])+"</ds:DigestValue>", 1)
	si := regexp.MustCompile(`(?s)<ds:SignedInfo>.*</ds:SignedInfo>`).FindString(doc)
	si = strings.Replace(si, "<ds:SignedInfo>", `<ds:SignedInfo xmlns:ds="`+NSDSig+`">`, 1)
	csi, err := xmllintC14N(t, si)
	if err != nil {
		t.Fatalf("xmllint: %v", err)
	}
	dir := t.TempDir()
	siFile := filepath.Join(dir, "si")
	if err := os.WriteFile(siFile, csi, 0o600); err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "sig")
	testtool.RunOpenSSL(t, "dgst", "-sha256", "-sign", keyFile, "-out", sigFile, siFile)
	sv, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.Replace(doc, "<ds:SignatureValue></ds:SignatureValue>", "<ds:SignatureValue>"+base64.StdEncoding.EncodeToString(sv)+"</ds:SignatureValue>", 1))
}

// TestVerifyEnvelopedProcessingInstructions: an enveloped signature made by
// another implementation (libxml2's canonical form, signed by openssl) over
// a document with PIs before, inside and after the document element
// verifies, and a change of a PI's data, target or place alone makes it
// fail; a change inside the signature, of whitespace outside the document
// element, or of a comment (a same-document reference has none) does not.
func TestVerifyEnvelopedProcessingInstructions(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	signers := []*x509.Certificate{testSigner(t, key)}
	doc := `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<?xml-stylesheet type="text/xsl" href="podani.xsl"?>` + "\n" +
		strings.Replace(signedDoc(algRSASHA256, algExcC14N, "", `<item n="1">one<?mark here?></item>`),
			"<ds:SignedInfo>", "<?pi in the signature?><ds:SignedInfo>", 1) +
		"\n<?after end?>"
	good := string(signWithOpenSSL(t, doc, keyFile))
	// This package signs the same bytes: RSA PKCS#1 v1.5 is deterministic,
	// so the same canonical forms give the same document.
	pkg, err := ResignEnveloped([]byte(good), key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pkg, []byte(good)) {
		t.Errorf("ResignEnveloped signs otherwise:\n%s\nlibxml2 and openssl:\n%s", pkg, good)
	}
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"as signed", good, true},
		{"signed by this package", string(pkg), true},
		{"stylesheet changed", strings.Replace(good, "podani.xsl", "podani2.xsl", 1), false},
		{"stylesheet removed", strings.Replace(good, `<?xml-stylesheet type="text/xsl" href="podani.xsl"?>`, "", 1), false},
		{"PI target case changed", strings.Replace(good, "<?xml-stylesheet", "<?xml-Stylesheet", 1), false},
		{"PI inside changed", strings.Replace(good, "<?mark here?>", "<?mark there?>", 1), false},
		{"PI inside moved", strings.Replace(strings.Replace(good, "<?mark here?>", "", 1), "one", "<?mark here?>one", 1), false},
		{"PI inside gains trailing space", strings.Replace(good, "<?mark here?>", "<?mark here ?>", 1), false},
		{"PI after changed", strings.Replace(good, "<?after end?>", "<?after End?>", 1), false},
		{"PI added after", good + "<?more?>", false},
		{"PI inside gains leading space", strings.Replace(good, "<?mark here?>", "<?mark   here?>", 1), true},
		{"PI in the signature changed", strings.Replace(good, "<?pi in the signature?>", "<?pi changed?>", 1), true},
		{"whitespace outside changed", strings.Replace(good, "?>\n<doc", "?>\n\n \t<doc", 1) + "\n", true},
		{"comment added", strings.Replace(good, "one", "one<!-- a comment -->", 1), true},
		{"XML declaration dropped", strings.Replace(good, `<?xml version="1.0" encoding="UTF-8"?>`, "", 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyEnveloped(root, signers)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrSignature) {
				t.Fatalf("err = %v, want ErrSignature", err)
			}
		})
	}
}
