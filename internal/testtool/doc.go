// Package testtool holds helpers that tests of several packages share. It
// is imported only from _test.go files.
//
// OpenSSL 3 (the openssl(1) command) is the interoperability peer of the CMS
// (RFC 5652), time-stamp (RFC 3161) and PKCS#10 (RFC 2986) tests: OpenSSL
// finds it, skipping a test where it is missing except in CI (CI set), where
// a missing peer must fail rather than pass silently.
package testtool
