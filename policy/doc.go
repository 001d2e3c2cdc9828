// Package policy judges X.509 certificate chains and reports the outcome as
// a Verdict with stable reason codes.
//
// Standards: RFC 5280 (certificate path validation), ETSI EN 319 102-1 (the
// main statuses of a validation: passed, failed, indeterminate).
//
// The foundation offers Basic, path validation with crypto/x509 at a given
// time against configured trust anchors. It does no revocation checking and
// knows no certificate policies: the accredited-CA policy (trusted lists,
// CRLs, OCSP, qualified certificates) plugs in behind the same Validator
// interface.
package policy
