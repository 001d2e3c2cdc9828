// Package xmldsig parses XML into a small tree, canonicalizes it and
// verifies enveloped XML signatures: what an ETSI TS 119 612 trusted list
// (and the EU list of lists) needs. package policy reads the lists' content
// on top of it.
//
// Standards: W3C Exclusive XML Canonicalization 1.0 without comments
// (https://www.w3.org/TR/xml-exc-c14n/, which refines Canonical XML 1.0,
// https://www.w3.org/TR/xml-c14n/: inclusive Canonical XML itself is not
// offered) and W3C XML Signature Syntax and Processing
// (https://www.w3.org/TR/xmldsig-core/), enveloped signatures only, with
// the algorithms of RFC 6931: RSA PKCS#1 v1.5 and ECDSA (r || s, RFC 4050)
// with SHA-256/384/512; SHA-1 is refused.
//
// Canonicalization covers every node of the XPath data model: elements
// with the namespace declarations they visibly utilize (xmlns="" where the
// output had a default namespace), attributes, character data (CDATA
// sections and character references as their characters), processing
// instructions and comments. A reference to the whole document (URI="",
// CanonicalizeDocument) has the PIs before the document element, each
// followed by a line feed, and those after it, each preceded by one; a
// reference to an element ("#id") and the SignedInfo (Canonicalize) have
// the PIs inside the element. Comments are in no form a signature digests
// (a same-document reference has none); the tests compare the form with
// them too. libxml2 (xmllint --exc-c14n) is the reference the tests hold
// the output to byte for byte, and it differs in one place: a namespace URI
// with "&" is written with "&amp;" as the spec says (section 2.3 of
// Canonical XML), where libxml2 writes "&" as it is.
//
// References. Every Reference must have a URI attribute: XMLDSig (section
// 4.4.3.1) leaves an absent one to the application, and VerifyEnveloped,
// whose nil says the document is signed, refuses it rather than guess.
// URI="" is the whole document; "#id" is the one element whose Id attribute
// is id (an Id on two elements is refused: the element digested and the
// element an application reads could differ); other documents and XPointer
// are refused. The enveloped-signature transform removes the signature
// that holds the reference from the node-set its URI selects, for "#id" as
// for "" (XMLDSig 1.1 section 6.6.4); on an element inside the signature it
// would leave nothing to digest and is refused; without it the signature
// is in the digest, which then never matches.
//
// What "the whole document is signed" means: one reference covers every
// node a same-document reference can cover, the document element and the
// PIs around it (comments are in none). URI="" always does. "#id" naming
// the document element (as many signers write it, XAdES libraries among
// them) covers the element only, so it counts as the whole document only
// when no PI is outside the document element; with one (an
// <?xml-stylesheet?> decides how the document is shown) the signature is
// refused, the error naming the PIs and URI="" as the remedy: a nil cannot
// say "all but the stylesheet".
//
// Parse takes namespace-well-formed XML 1.0 documents only, and refuses
// what has no canonical form (libxml2 fails on it too): an XML declaration
// anywhere but first, a PI target "xml" in any case, a character outside
// XML's Char in a comment or PI, content other than white space around the
// document element, a repeated attribute or namespace declaration, and a
// namespace URI that is not absolute (Canonical XML 1.0 section 2). It also
// refuses what libxml2 reports as a namespace error and canonicalizes all
// the same: an undeclared prefix, a PI target with a colon, xmlns:p="", a
// declaration of the prefixes xml or xmlns or of their namespaces, and two
// attributes with one namespace and local name; a signature over such a
// name would cover a namespace nobody declared. A namespace URI is checked
// by its characters (RFC 3986: a scheme, then unreserved and reserved
// characters, percent-escapes, one "#"); libxml2 also parses its
// authority, and the brackets of an IP literal are refused here.
//
// Bounds, each checked before the work it limits: a document nested deeper
// than MaxDepth, with more than MaxElements elements or more than
// MaxPIsAndComments processing instructions and comments is refused while
// it is parsed (adjacent character data is one node, so the nodes are
// bounded with them); a DOCTYPE or any other directive is refused (no
// entities, so no entity expansion); a SignedInfo has at most MaxReferences
// references, only same-document ones (the whole document, or "#id"), and
// only the enveloped-signature and exclusive C14N transforms. The caller
// bounds the document's size (policy.MaxTrustedListBytes).
//
// What it does not do: inclusive C14N, the #WithComments canonicalization
// method for the SignedInfo, the InclusiveNamespaces PrefixList of the
// exclusive transform (not read: a signature whose canonical form it
// changes does not verify), XPath or XSLT transforms, external references, detached
// signatures, RSASSA-PSS, and XML Encryption.
package xmldsig
