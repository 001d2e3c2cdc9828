package xmldsig

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// openSSLSigner writes a fresh RSA key where openssl reads it and returns
// the file and the key's self-signed certificate.
func openSSLSigner(t *testing.T) (string, []*x509.Certificate) {
	t.Helper()
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
	return keyFile, []*x509.Certificate{testSigner(t, key)}
}

// verifyCase is a document and what VerifyEnveloped must say of it: ""
// verifies, else ErrSignature with this part of the message.
type verifyCase struct{ name, doc, want string }

func runVerifyCases(t *testing.T, signers []*x509.Certificate, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyEnveloped(root, signers)
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

// refToRoot is signedDoc with the whole-document reference written as
// many signers write it: the document element's Id (URI="#root") with the
// enveloped-signature transform.
func refToRoot(content string) string {
	return strings.Replace(signedDoc(algRSASHA256, algExcC14N, "", content), `<ds:Reference URI="">`, `<ds:Reference URI="#root">`, 1)
}

// TestVerifyEnvelopedReferenceToRoot: a signature whose reference names the
// document element by its Id, with the enveloped-signature transform,
// made by another implementation (libxml2's canonical form of the element
// without the signature, signed by openssl), verifies: the transform
// leaves the signature out of the element's subtree as it does of the
// whole document (W3C XMLDSig 1.1 section 6.6.4). Any change in the
// element outside the signature fails; a change inside the signature
// outside the SignedInfo, and a comment or whitespace outside the element,
// do not (URI="" covers neither). A processing instruction outside the
// element, which URI="" would cover, is refused (doc.go: what counts as
// the whole document).
func TestVerifyEnvelopedReferenceToRoot(t *testing.T) {
	keyFile, signers := openSSLSigner(t)
	doc := `<?xml version="1.0" encoding="UTF-8"?>` + "\n<!-- before -->\n" +
		strings.Replace(refToRoot(`<item n="1">one<?mark here?></item><item n="2">two</item>`),
			"<ds:SignedInfo>", "<?pi in the signature?><ds:SignedInfo>", 1) + "\n<!-- after -->\n"
	good := string(signWithOpenSSLOver(t, doc, keyFile, true))
	runVerifyCases(t, signers, []verifyCase{
		{"as signed", good, ""},
		{"content changed", strings.Replace(good, "two", "tw0", 1), "digest of reference"},
		{"attribute changed", strings.Replace(good, `n="2"`, `n="3"`, 1), "digest of reference"},
		{"attribute added to the document element", strings.Replace(good, `<doc `, `<doc a="1" `, 1), "digest of reference"},
		{"element added after the signature", strings.Replace(good, "</ds:Signature></doc>", "</ds:Signature><item/></doc>", 1), "digest of reference"},
		{"element moved into the signature", strings.Replace(strings.Replace(good, `<item n="2">two</item>`, "", 1), "<ds:SignedInfo>", `<ds:Object><item n="2">two</item></ds:Object><ds:SignedInfo>`, 1), "digest of reference"},
		{"PI inside changed", strings.Replace(good, "<?mark here?>", "<?mark there?>", 1), "digest of reference"},
		{"Id changed", strings.Replace(good, `Id="root"`, `Id="other"`, 1), "not found"},
		{"PI in the signature changed", strings.Replace(good, "<?pi in the signature?>", "<?pi changed?>", 1), ""},
		{"KeyInfo added to the signature", strings.Replace(good, "</ds:SignatureValue>", "</ds:SignatureValue><ds:KeyInfo/>", 1), ""},
		{"the Id also in the signature", strings.Replace(good, "</ds:SignatureValue>", `</ds:SignatureValue><ds:KeyInfo Id="root"/>`, 1), "more than one element"},
		{"comment outside changed", strings.Replace(good, "<!-- after -->", "<!-- later -->", 1), ""},
		{"whitespace outside changed", strings.Replace(good, "\n<!-- after -->\n", "\n\n\t<!-- after -->", 1), ""},
		{"stylesheet added before", strings.Replace(good, "<!-- before -->", `<?xml-stylesheet type="text/xsl" href="evil.xsl"?>`, 1), "processing instructions outside"},
		{"PI added after", good + "<?after?>", "processing instructions outside"},
	})
}

// TestVerifyEnvelopedReferenceToRootPIsOutside: a document with a
// processing instruction outside the document element (<?xml-stylesheet?>
// decides how it is shown) signed by another implementation with a
// reference to the document element's Id has a valid signature over the
// element, but not over the document: VerifyEnveloped, whose nil says the
// whole document is signed, refuses it and names URI="" as the remedy;
// the same document signed with URI="" verifies.
func TestVerifyEnvelopedReferenceToRootPIsOutside(t *testing.T) {
	keyFile, signers := openSSLSigner(t)
	const content = `<item n="1">one</item>`
	const head = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<?xml-stylesheet type="text/xsl" href="podani.xsl"?>` + "\n"
	byID := string(signWithOpenSSLOver(t, head+refToRoot(content), keyFile, true))
	whole := string(signWithOpenSSL(t, head+signedDoc(algRSASHA256, algExcC14N, "", content), keyFile))
	runVerifyCases(t, signers, []verifyCase{
		{"URI=#root, stylesheet before", byID, `processing instructions outside the document element`},
		{"URI=#root, stylesheet after", strings.Replace(byID, head, `<?xml version="1.0" encoding="UTF-8"?>`, 1) + `<?xml-stylesheet type="text/xsl" href="podani.xsl"?>`, `processing instructions outside the document element`},
		{"URI=#root, stylesheet removed", strings.Replace(byID, `<?xml-stylesheet type="text/xsl" href="podani.xsl"?>`, "", 1), ""},
		{"URI=\"\"", whole, ""},
		{"URI=\"\", stylesheet changed", strings.Replace(whole, "podani.xsl", "evil.xsl", 1), "digest of reference"},
	})
}

// TestVerifyEnvelopedReferenceURI: a Reference without a URI attribute
// (whose meaning XMLDSig leaves to the application) is refused, even when
// it is signed as URI=""; URI="" without the enveloped-signature transform
// digests the signature too (so never verifies); a URI to another document,
// an empty "#" and an XPointer are refused; an enveloped-signature transform on an element
// inside the signature (which leaves nothing to digest) is refused; an Id
// that names two elements is refused; the enveloped-signature transform on
// an element outside the signature leaves it as it is.
func TestVerifyEnvelopedReferenceURI(t *testing.T) {
	keyFile, signers := openSSLSigner(t)
	const content = `<item n="1">one</item><item n="2" Id="two">two</item>`
	noURI := strings.Replace(signedDoc(algRSASHA256, algExcC14N, "", content), `<ds:Reference URI="">`, `<ds:Reference>`, 1)
	// extra references: digest values computed by this package over the
	// element (checked against libxml2 by TestCanonicalizeSubtree and
	// TestCanonicalizeDocumentMatchesXmllint); the whole-document reference
	// and the signature are openssl's and libxml2's.
	withRef := func(uri string, enveloped bool, object string) string {
		tr := `<ds:Transforms><ds:Transform Algorithm="` + algExcC14N + `"/></ds:Transforms>`
		if enveloped {
			tr = `<ds:Transforms><ds:Transform Algorithm="` + algEnveloped + `"/><ds:Transform Algorithm="` + algExcC14N + `"/></ds:Transforms>`
		}
		doc := strings.Replace(signedDoc(algRSASHA256, algExcC14N,
			`<ds:Reference URI="`+uri+`">`+tr+`<ds:DigestMethod Algorithm="`+algDigSHA256+`"/><ds:DigestValue>@</ds:DigestValue></ds:Reference>`, content),
			"</ds:SignatureValue>", "</ds:SignatureValue>"+object, 1)
		root := mustParse(t, []byte(strings.Replace(doc, "@", "", 1)))
		target := findFirstByID(root, uri[1:])
		if target == nil {
			t.Fatalf("no %s", uri)
		}
		d := sha256Base64(Canonicalize(target, nil))
		return string(signWithOpenSSL(t, strings.Replace(doc, "@", d, 1), keyFile))
	}
	const object = `<ds:Object><p Id="obj">signed property</p></ds:Object>`
	plainRef := func(uri string) string {
		return string(signWithOpenSSL(t, signedDoc(algRSASHA256, algExcC14N,
			`<ds:Reference URI="`+uri+`"><ds:DigestMethod Algorithm="`+algDigSHA256+`"/><ds:DigestValue>AA==</ds:DigestValue></ds:Reference>`, content), keyFile))
	}
	runVerifyCases(t, signers, []verifyCase{
		{"no URI attribute", string(signWithOpenSSL(t, noURI, keyFile)), "no URI attribute"},
		// Without the transform the signature is in URI=""'s node-set.
		{"URI=\"\" without the enveloped transform", string(signWithOpenSSL(t, strings.Replace(signedDoc(algRSASHA256, algExcC14N, "", content), `<ds:Transform Algorithm="`+algEnveloped+`"/>`, "", 1), keyFile)), "digest of reference"},
		{"external URI", plainRef("https://example.com/doc.xml"), "not to this document"},
		{"URI=#", plainRef("#"), "names no Id"},
		{"URI=#xpointer(/)", plainRef("#xpointer(/)"), "not found"},
		{"enveloped transform on an element in the signature", withRef("#obj", true, object), `inside the signature`},
		{"the same without the enveloped transform", withRef("#obj", false, object), ""},
		{"enveloped transform on an element outside the signature", withRef("#two", true, ""), ""},
		{"an Id on two elements", withRef("#two", false, `<ds:Object><p Id="two">other</p></ds:Object>`), `more than one element`},
	})
}

// findFirstByID is the first element in document order whose Id is id.
func findFirstByID(n *Node, id string) *Node {
	if v, ok := n.Attr("Id"); ok && v == id {
		return n
	}
	for _, e := range n.Elements() {
		if f := findFirstByID(e, id); f != nil {
			return f
		}
	}
	return nil
}

func sha256Base64(b []byte) string {
	d := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(d[:])
}
