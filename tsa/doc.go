// Package tsa is an RFC 3161 time-stamping authority and the verification
// of its tokens.
//
// Standards: RFC 3161 (Time-Stamp Protocol: TimeStampReq, TimeStampResp,
// TSTInfo, the HTTP transport with application/timestamp-query and
// application/timestamp-reply), RFC 5816 (ESSCertIDv2 in the token's
// signing-certificate-v2 attribute), RFC 5035 (signing-certificate-v2),
// RFC 5652 (the token is a CMS SignedData with eContentType id-ct-TSTInfo),
// ETSI EN 319 122-1 5.3 (the CAdES-T signature-time-stamp attribute, whose
// verification plugs into signer.VerifyOptions.TimestampVerifier).
//
// An Authority takes its key as any crypto.Signer with its certificate
// chain (in pecet a TIMESTAMP key on the HSM, fetched per request so that
// rotation needs no restart), a clock, and fixed settings: the policy and
// the policies a request may ask for, the accuracy, the accepted hashes
// (SHA-256/384/512; SHA-1 is badAlg), whether to name the TSA. It parses
// requests strictly (DER only, at most MaxRequestBytes, nothing after the
// request) and always answers with a TimeStampResp: a failure is a
// rejection with a PKIFailureInfo (badAlg, badRequest, badDataFormat,
// unacceptedPolicy, unacceptedExtension, timeNotAvailable, systemFailure),
// never a Go error string.
//
// Serial numbers are 160-bit positive integers made of a random instance
// prefix, 64 fresh random bits and a per-instance counter, so replicas
// sharing one HSM never coordinate and never collide (see newSerials).
// genTime never goes back within a process: a clock stepped backwards
// repeats the last genTime rather than issuing an earlier one. Ordering is
// always false: independent replicas cannot order their tokens.
//
// A ClockGuard compares the system clock with a reference (an HTTP Date
// header, or an offset file a chrony/NTP monitor writes) and makes the
// Authority answer timeNotAvailable while the offset exceeds the accuracy.
//
// Verify checks a token: the CMS signature (through signer.Verify), the TSA
// certificate's timeStamping EKU and chain under the trust anchors
// (policy.Validator with PurposeTimestamping, at genTime), the message
// imprint, the nonce when one was sent, and that an ESS
// signing-certificate(-v2) attribute names the TSA certificate. A token
// without certificates is verified with the TSA certificates the caller
// configured, never accepted unverified.
//
// It does not: keep an audit trail of tokens (the server logs them), support
// ordering, accept request extensions, or fetch certificates.
package tsa
