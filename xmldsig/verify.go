package xmldsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // registers SHA-384/512 for digests named by URI (crypto.Hash.New)
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// ErrSignature is returned for an enveloped signature that is missing,
// malformed, uses an algorithm outside the supported set, or does not
// verify.
var ErrSignature = errors.New("xmldsig: signature invalid")

// NSDSig is the XML Signature namespace.
const NSDSig = "http://www.w3.org/2000/09/xmldsig#"

// MaxReferences bounds the References of a SignedInfo: each one is a
// canonicalization and a digest of (up to) the whole document.
const MaxReferences = 8

const (
	algExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	algEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algRSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	algDigSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	algDigSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	algDigSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
	algRSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	algRSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	algECDSA256  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	algECDSA384  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	algECDSA512  = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
)

// VerifyEnveloped checks the XMLDSig signature that is a child of root: one
// enveloped signature, exclusive C14N, at most MaxReferences references,
// each with a URI, of which one covers the whole document (URI="", or
// "#id" naming the document element when no processing instruction is
// outside it), each digest matching, and the signature value verifying
// with one of signers' keys. Every error wraps ErrSignature.
func VerifyEnveloped(root *Node, signers []*x509.Certificate) error {
	sigs := root.ChildrenNamed(NSDSig, "Signature")
	if len(sigs) != 1 {
		return fmt.Errorf("%w: want exactly one enveloped signature, found %d", ErrSignature, len(sigs))
	}
	sig := sigs[0]
	si := sig.Child(NSDSig, "SignedInfo")
	if si == nil {
		return fmt.Errorf("%w: no SignedInfo", ErrSignature)
	}
	if alg, _ := si.Child(NSDSig, "CanonicalizationMethod").Attr("Algorithm"); alg != algExcC14N {
		return fmt.Errorf("%w: canonicalization %q is not supported (exclusive C14N only)", ErrSignature, alg)
	}
	sm, _ := si.Child(NSDSig, "SignatureMethod").Attr("Algorithm")
	h, isRSA, isPSS, err := sigMethod(sm)
	if err != nil {
		return err
	}
	refs := si.ChildrenNamed(NSDSig, "Reference")
	if len(refs) == 0 || len(refs) > MaxReferences {
		return fmt.Errorf("%w: %d references", ErrSignature, len(refs))
	}
	coversDocument, elementOnly := false, ""
	for _, ref := range refs {
		uri, ok := ref.Attr("URI")
		if !ok {
			// XMLDSig 1.1 section 4.4.3.1 leaves an absent URI to the
			// application; a verdict that the document is signed cannot
			// rest on a guess (docs: doc.go).
			return fmt.Errorf("%w: a Reference has no URI attribute, so what it covers is not said; a signature over the whole document writes URI=\"\"", ErrSignature)
		}
		var target *Node
		switch {
		case uri == "":
			target = root
		case strings.HasPrefix(uri, "#"):
			if target, err = findByID(root, uri[1:]); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: reference %q is not to this document (only URI=\"\" and \"#id\" are supported)", ErrSignature, uri)
		}
		// skip is what the enveloped-signature transform removes from the
		// node-set the URI selects: the signature that holds the
		// reference, for "#id" as for "" (W3C XMLDSig 1.1 section 6.6.4).
		var skip *Node
		if tr := ref.Child(NSDSig, "Transforms"); tr != nil {
			for _, t := range tr.ChildrenNamed(NSDSig, "Transform") {
				alg, _ := t.Attr("Algorithm")
				switch alg {
				case algEnveloped:
					if within(target, sig) {
						return fmt.Errorf("%w: the enveloped-signature transform of reference %q leaves nothing to digest: the element is inside the signature", ErrSignature, uri)
					}
					skip = sig
				case algExcC14N:
				default:
					return fmt.Errorf("%w: transform %q is not supported", ErrSignature, alg)
				}
			}
		}
		dm, _ := ref.Child(NSDSig, "DigestMethod").Attr("Algorithm")
		dh, err := digestMethod(dm)
		if err != nil {
			return err
		}
		want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(ref.Child(NSDSig, "DigestValue").Text()))
		if err != nil {
			return fmt.Errorf("%w: digest value", ErrSignature)
		}
		hh := dh.New()
		if uri == "" {
			// URI="": the whole document, with the PIs around the
			// document element.
			hh.Write(CanonicalizeDocument(root, skip))
		} else {
			hh.Write(Canonicalize(target, skip))
		}
		if subtle.ConstantTimeCompare(hh.Sum(nil), want) != 1 {
			return fmt.Errorf("%w: the digest of reference %q does not match (the document was changed)", ErrSignature, uri)
		}
		// "#id" naming the document element covers the whole document
		// only when nothing outside it would be in URI=""'s node-set: a
		// PI around the document element (<?xml-stylesheet?> decides how
		// the document is shown) is not in the element's (docs: doc.go).
		switch {
		case target != root:
		case uri == "" || !root.hasPIsOutside():
			coversDocument = true
		default:
			elementOnly = uri
		}
	}
	if !coversDocument && elementOnly != "" {
		return fmt.Errorf("%w: reference %q covers the document element but not the processing instructions outside the document element; only URI=\"\" covers the whole document", ErrSignature, elementOnly)
	}
	if !coversDocument {
		return fmt.Errorf("%w: no reference covers the whole document", ErrSignature)
	}
	sv, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sig.Child(NSDSig, "SignatureValue").Text()), ""))
	if err != nil {
		return fmt.Errorf("%w: signature value", ErrSignature)
	}
	hh := h.New()
	hh.Write(Canonicalize(si, nil))
	digest := hh.Sum(nil)
	for _, c := range signers {
		switch k := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if isRSA && !isPSS && rsa.VerifyPKCS1v15(k, h, digest, sv) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if !isRSA && verifyECDSA(k, digest, sv) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: the signature does not verify with the configured signer certificate", ErrSignature)
}

// verifyECDSA checks an XMLDSig ECDSA value (r || s, RFC 4050).
func verifyECDSA(k *ecdsa.PublicKey, digest, sv []byte) bool {
	n := (k.Curve.Params().BitSize + 7) / 8
	if len(sv) != 2*n {
		return false
	}
	der, err := cms.ECDSARawToDER(sv)
	return err == nil && ecdsa.VerifyASN1(k, digest, der)
}

func sigMethod(alg string) (h crypto.Hash, isRSA, isPSS bool, err error) { //nolint:unparam // the caller verifies RSASSA-PSS when a method yields it; none is accepted yet
	switch alg {
	case algRSASHA256:
		return crypto.SHA256, true, false, nil
	case algRSASHA384:
		return crypto.SHA384, true, false, nil
	case algRSASHA512:
		return crypto.SHA512, true, false, nil
	case algECDSA256:
		return crypto.SHA256, false, false, nil
	case algECDSA384:
		return crypto.SHA384, false, false, nil
	case algECDSA512:
		return crypto.SHA512, false, false, nil
	}
	// rsa-sha1 is refused: SHA-1 is not suitable for signatures (TS 119 312).
	return 0, false, false, fmt.Errorf("%w: signature method %q is not supported", ErrSignature, alg)
}

func digestMethod(alg string) (crypto.Hash, error) {
	switch alg {
	case algDigSHA256:
		return crypto.SHA256, nil
	case algDigSHA384:
		return crypto.SHA384, nil
	case algDigSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("%w: digest method %q is not supported", ErrSignature, alg)
}

// KeyInfoCertificates returns the certificates in the KeyInfo of root's
// enveloped signature (none when it has no signature or no KeyInfo). They
// are NOT to be trusted by themselves: the signer's certificate must come
// from elsewhere.
func KeyInfoCertificates(root *Node) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	ki := root.Child(NSDSig, "Signature").Child(NSDSig, "KeyInfo")
	for _, xd := range ki.ChildrenNamed(NSDSig, "X509Data") {
		for _, x := range xd.ChildrenNamed(NSDSig, "X509Certificate") {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(x.Text()), ""))
			if err != nil {
				return nil, err
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

var (
	reDigest   = regexp.MustCompile(`(<(?:[A-Za-z0-9_-]+:)?Reference\b[^>]*URI=""[^>]*>(?s:.*?)<(?:[A-Za-z0-9_-]+:)?DigestValue>)([^<]*)(<)`)
	reSigValue = regexp.MustCompile(`(<(?:[A-Za-z0-9_-]+:)?SignatureValue\b[^>]*>)([^<]*)(<)`)
)

// ResignEnveloped signs a document that already carries an enveloped
// exclusive-C14N RSA-SHA256 signature again with key: it recomputes the
// digest of the reference to the whole document and the signature value,
// leaving the rest of the signature (and of the document) as it is.
func ResignEnveloped(data []byte, key *rsa.PrivateKey) ([]byte, error) {
	root, err := Parse(data)
	if err != nil {
		return nil, err
	}
	sig := root.Child(NSDSig, "Signature")
	if sig == nil {
		return nil, fmt.Errorf("%w: no enveloped signature to replace", ErrSignature)
	}
	d := sha256.Sum256(CanonicalizeDocument(root, sig))
	loc := reDigest.FindSubmatchIndex(data)
	if loc == nil {
		return nil, fmt.Errorf("%w: no reference to the whole document", ErrSignature)
	}
	out := append(append(append([]byte{}, data[:loc[4]]...), base64.StdEncoding.EncodeToString(d[:])...), data[loc[5]:]...)
	root, err = Parse(out)
	if err != nil {
		return nil, err
	}
	si := root.Child(NSDSig, "Signature").Child(NSDSig, "SignedInfo")
	if si == nil {
		return nil, fmt.Errorf("%w: no SignedInfo", ErrSignature)
	}
	h := sha256.Sum256(Canonicalize(si, nil))
	sv, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
	if err != nil {
		return nil, err
	}
	loc = reSigValue.FindSubmatchIndex(out)
	if loc == nil {
		return nil, fmt.Errorf("%w: no SignatureValue", ErrSignature)
	}
	var b bytes.Buffer
	b.Write(out[:loc[4]])
	b.WriteString(base64.StdEncoding.EncodeToString(sv))
	b.Write(out[loc[5]:])
	return b.Bytes(), nil
}
