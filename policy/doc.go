// Package policy judges X.509 certificate chains under named policies and
// reports the outcome as a Verdict with stable reason codes.
//
// Standards: RFC 5280 section 6 (path validation: signatures, validity,
// name chaining, basic constraints and path length, key usage, name
// constraints for DN, DNS, RFC 822, URI and IP names, certificate policies
// with the initial inputs of 6.1.1, critical extensions) and 6.3 (CRLs:
// issuer, signature, scope and issuing distribution point, indirect and
// delta CRLs), RFC 6960 (OCSP, through golang.org/x/crypto/ocsp, with a
// nonce and responder authorisation), RFC 3739 and ETSI EN 319 412-5
// (QCStatements), ETSI EN 319 411-2 (qualified certificate policies), ETSI
// TS 119 612 (trusted lists; their XML, exclusive C14N and XMLDSig are
// package xmldsig), ETSI TS 119 312
// (algorithm suitability dates), ETSI EN 319 102-1 (the main statuses of a
// validation: passed, failed, indeterminate).
//
// Engine is the accredited-CA policy engine behind the Validator interface:
// path building from the leaf through the request's and the policy's
// intermediates to an anchor, trying alternatives (several candidate
// issuers, cross-certificates) within bounds on depth, signature checks and
// candidate paths; then validation, revocation at the trusted time, the
// algorithm rules, key usage per purpose, QC statements and qualification
// (QES, AdES-QC, AdES). crypto/x509 parses certificates and CRLs and checks
// single signatures; everything RFC 5280 section 6 adds is here. The NIST
// PKITS suite runs as a test (docs/pkits.md lists the five deviations).
//
// What it does not do: LDAP distribution points, DSA signatures, attribute
// certificates, and the ETSI "past signature validation" with proofs of
// existence beyond the single trusted time the caller gives.
//
// Basic is the foundation's implementation (crypto/x509 at a time against
// a root pool, no revocation), kept for callers that need nothing more.
package policy
