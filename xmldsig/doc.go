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
// Bounds, each checked before the work it limits: a document nested deeper
// than MaxDepth or with more than MaxElements elements is refused while it
// is parsed; a DOCTYPE or any other directive is refused (no entities, so
// no entity expansion); a SignedInfo has at most MaxReferences references,
// only same-document ones (the whole document, or "#id"), and only the
// enveloped-signature and exclusive C14N transforms. The caller bounds the
// document's size (policy.MaxTrustedListBytes).
//
// What it does not do: inclusive C14N, comments in the canonical form,
// XPath or XSLT transforms, external references, detached signatures,
// RSASSA-PSS, and XML Encryption.
package xmldsig
