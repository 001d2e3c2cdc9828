// Package signer makes and verifies CMS SignedData signatures (RFC 5652)
// with the CAdES baseline B signed attributes (ETSI EN 319 122-1 5.2):
// content-type, message-digest, signing-time and signing-certificate-v2
// (RFC 5035).
//
// Sign and SignDigest take any crypto.Signer, in pecet a key in a PKCS#11
// token: the package computes the digest of the signed attributes and calls
// Sign on the key exactly once, so no key material or session ever reaches
// it. RSA keys sign with PKCS#1 v1.5 (signatureAlgorithm rsaEncryption, as
// OpenSSL writes), ECDSA keys with ecdsa-with-SHA256/384/512. New signatures
// use SHA-256, SHA-384 or SHA-512 only.
//
// Parse reads a ContentInfo with a SignedData, DER or the BER OpenSSL writes
// when it streams, within Limits fixed before any allocation-heavy work, so
// hostile input cannot make it allocate much more than its own size. Verify
// checks the content digest, the signed attributes, the signature (RSA
// PKCS#1 v1.5, RSA-PSS, ECDSA; with SHA-2 or SHA-3, which ETSI TS 119 312
// recommends) and the ESS signing-certificate attributes,
// then asks a policy.Validator to judge the signer's chain, and returns a
// policy.Verdict: a bad signature is a verdict, not an error.
//
// CAdES-T (ETSI EN 319 122-1 5.3) plugs in from outside: a signer adds a
// signature time-stamp through Options.UnsignedAttributes, and Verify hands
// each signature-time-stamp attribute to VerifyOptions.TimestampVerifier
// (package tsa implements both ends), then judges the signer's chain at the
// verified time-stamp's time. Options.ContentType and OmitCertificates let
// package tsa sign an RFC 3161 TSTInfo with the same code.
//
// It does not: fetch certificates, CRLs or OCSP responses (the Validator
// decides about revocation); make or parse time-stamp tokens itself (tsa
// does); handle counter-signatures, attribute
// certificates or content types other than id-data when signing; sign with
// Ed25519 or RSA-PSS keys.
package signer
