// Package grpcerr is the one place where library errors become gRPC statuses.
// A client gets a fixed, plain message it can act on; the wrapped cause (which
// may name files, PKCS#11 return values or handles) goes only to the log.
package grpcerr

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecet-hsm/pecet/cades"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/dualcontrol"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

type mapping struct {
	err  error
	code codes.Code
	msg  string
}

// table is checked in order; the first errors.Is match wins.
var table = []mapping{
	{authz.ErrNoIdentity, codes.Unauthenticated, "a client certificate is required"},
	{authz.ErrDenied, codes.PermissionDenied, "permission denied: your identity may not make this call or use this key"},
	{ratelimit.ErrLimited, codes.ResourceExhausted, "request rate limit exceeded for your identity; slow down and retry"},
	// No wait lets it through, so not ResourceExhausted, which clients retry.
	{ratelimit.ErrExceedsBurst, codes.InvalidArgument, "the call has more items than limits.burst lets one client have at once: split it into smaller calls"},
	{keystore.ErrKeyNotFound, codes.NotFound, "no key with that alias: list keys with `pecet keys list`"},
	{keystore.ErrVersionNotFound, codes.NotFound, "the key has no such version: see `pecet keys show`"},
	{keystore.ErrKeyExists, codes.AlreadyExists, "a key with that alias already exists"},
	{keystore.ErrWrongPurpose, codes.FailedPrecondition, "the key's purpose does not allow this operation"},
	{keystore.ErrKeyNotEnabled, codes.FailedPrecondition, "the key version is not enabled (pending a certificate, disabled or destroyed)"},
	{keystore.ErrNoPrimary, codes.FailedPrecondition, "the key has no enabled primary version"},
	{keystore.ErrUnsupportedAlgorithm, codes.InvalidArgument, "unsupported key algorithm for this purpose"},
	{keystore.ErrCertificateMismatch, codes.InvalidArgument, "the certificate does not match the key"},
	{keystore.ErrInvalidPurpose, codes.InvalidArgument, "unknown key purpose: use SIGN, DECRYPT or TIMESTAMP"},
	{keystore.ErrVersionRefused, codes.FailedPrecondition, "the key version is refused: its certificate (or public key) on the token does not match its private key; an officer must import a matching certificate (see `pecet keys show`)"},
	{keystore.ErrConflict, codes.Aborted, "another replica changed the key at the same time; retry"},
	{keystore.ErrInvalidState, codes.FailedPrecondition, "the key version's state does not allow this change"},
	{keystore.ErrInvalidAlias, codes.InvalidArgument, "invalid key alias: use 1-64 characters a-z 0-9 . _ -"},
	{keystore.ErrCertificateUsage, codes.InvalidArgument, "the certificate's key usage does not fit the key's purpose: SIGN needs digitalSignature or nonRepudiation, DECRYPT keyEncipherment, TIMESTAMP exactly one critical timeStamping EKU"},
	{keystore.ErrRequestNotFound, codes.NotFound, "no pending request with that id (approved already, expired, or never made): see `pecet keys requests`"},
	{keystore.ErrInvalidRequest, codes.InvalidArgument, "invalid request id"},
	{dualcontrol.ErrExpired, codes.FailedPrecondition, "the request has expired: ask for the operation again"},
	{dualcontrol.ErrSelfApproval, codes.PermissionDenied, "a request must be approved by a different officer than the one who made it"},
	{dualcontrol.ErrNotAdmitted, codes.FailedPrecondition, "the key version awaits dual-control approval: it can sign or decrypt once a second officer approves making it primary (see `pecet keys requests`)"},
	{dualcontrol.ErrStale, codes.FailedPrecondition, "the version's certificate changed after the request was made: ask for the operation again"},
	{dualcontrol.ErrMalformed, codes.Internal, "the stored request cannot be read; the server log has the details"},
	{audit.ErrUnavailable, codes.Unavailable, "the audit log cannot be written, so the operation was refused; retry later"},
	{keystore.ErrPoolExhausted, codes.ResourceExhausted, "the HSM is busy: no session became free in time, retry later"},
	{keystore.ErrTokenUnavailable, codes.Unavailable, "the HSM token is unavailable, retry later"},
	{keystore.ErrPINIncorrect, codes.Unavailable, "the HSM token is not logged in (it refused the PIN); an operator must fix the PIN and restart pecetd"},
	{keystore.ErrPINLocked, codes.Unavailable, "the HSM token is not logged in (its PIN is locked); an operator must unlock it and restart pecetd"},
	{signer.ErrTooLarge, codes.ResourceExhausted, "the CMS input exceeds the parsing limits"},
	{signer.ErrMalformed, codes.InvalidArgument, "the signature is not a well-formed CMS SignedData"},
	{signer.ErrUnsupportedHash, codes.InvalidArgument, "unsupported hash algorithm: use SHA-256, SHA-384 or SHA-512"},
	{signer.ErrDigestLength, codes.InvalidArgument, "the digest length does not match the hash algorithm"},
	{signer.ErrEmptyContent, codes.InvalidArgument, "the data to sign is empty"},
	{signer.ErrContentMissing, codes.InvalidArgument, "a detached signature needs the signed content or its digest"},
	{signer.ErrUnsupportedKey, codes.FailedPrecondition, "the key type is not supported for CMS signatures"},
	{signer.ErrNoCertificate, codes.FailedPrecondition, "the signing key has no certificate"},
	{signer.ErrKeyMismatch, codes.FailedPrecondition, "the signing key's certificate does not match the key"},
	{policy.ErrUnknownPolicy, codes.NotFound, "no policy with that name: list them with `pecet policy list`"},
	{policy.ErrOverrideForbidden, codes.PermissionDenied, "the policy does not allow this per-call override (extra anchors, CRLs or a weaker revocation mode): see `pecet policy show NAME`"},
	{policy.ErrWorkBudget, codes.ResourceExhausted, "the verification needs more work than the per-call work budget allows (signature checks, candidate paths, bytes): send only the signer's chain with the anchors and CRLs it needs, or configure trust lists and CRLs in a server-side policy"},
	{policy.ErrMalformedCRL, codes.InvalidArgument, "a CRL is not a well-formed DER X.509 CRL (or is too large)"},
	// One status and message for every decryption failure: no oracle.
	{envelope.ErrDecrypt, codes.InvalidArgument, "decryption failed"},
	{envelope.ErrStreamGCM, codes.FailedPrecondition, "AES-GCM (AuthEnvelopedData) is not streamed: its tag is checked only at the end; use the unary Encrypt or Decrypt (up to the message limit), or AES-CBC"},
	{envelope.ErrNoRecipient, codes.FailedPrecondition, "the message is not encrypted to any enabled DECRYPT key you may use"},
	{envelope.ErrTooLarge, codes.ResourceExhausted, "the message exceeds the limits (body size, recipients or CMS structure)"},
	{envelope.ErrMalformed, codes.InvalidArgument, "the input is not a well-formed CMS EnvelopedData or AuthEnvelopedData"},
	{envelope.ErrUnsupported, codes.InvalidArgument, "unsupported cipher or key transport: AES-CBC or AES-GCM with RSA-OAEP (SHA-256 or SHA-1) or RSA PKCS#1 v1.5"},
	{envelope.ErrNoRecipients, codes.InvalidArgument, "at least one recipient is required"},
	{envelope.ErrEmptyContent, codes.InvalidArgument, "the data to encrypt is empty"},
	{envelope.ErrKeyUsage, codes.FailedPrecondition, "a recipient certificate does not allow key encipherment (allow_legacy overrides)"},
	{envelope.ErrWeakKey, codes.FailedPrecondition, "a recipient's RSA key is shorter than 2048 bits (allow_legacy overrides)"},
	{envelope.ErrExpired, codes.FailedPrecondition, "a recipient certificate is expired or not yet valid (allow_legacy overrides)"},
	{envelope.ErrUnsupportedKey, codes.FailedPrecondition, "a recipient's key is not RSA: pecet encrypts with RSA key transport only"},
	{tsa.ErrNoTSA, codes.FailedPrecondition, "no time-stamping authority is configured on this server (tsa: in the config)"},
	{tsa.ErrTimeNotAvailable, codes.Unavailable, "the time-stamping authority's clock is not trusted now; retry later (see /readyz)"},
	{tsa.ErrRejected, codes.Unavailable, "the time-stamping authority cannot issue a token now; retry later"},
	{tsa.ErrCertificateMismatch, codes.FailedPrecondition, "the TSA certificate does not match the TSA key"},
	{tsa.ErrExtKeyUsage, codes.FailedPrecondition, "the TSA certificate lacks the critical timeStamping extended key usage"},
	{signer.ErrContentType, codes.InvalidArgument, "bad content type for a signature"},
	{cades.ErrNotValid, codes.FailedPrecondition, "the signature (for LT and LTA also the TSA's certificate) is not VALID now under the policy (for LT and LTA with revocation required), so it is neither time-stamped nor given validation material: see why with `pecet verify` (`--revocation require` for LT and LTA; give the CA's CRLs with --crl)"},
	{cades.ErrContentNeeded, codes.InvalidArgument, "the archive time-stamp of a detached signature covers the content: give the content or its SHA-256 digest"},
	{cades.ErrUnsupported, codes.InvalidArgument, "pecet augments a signature of one signer to level T, LT or LTA"},
	{cades.ErrTooLarge, codes.ResourceExhausted, "a CAdES attribute of the signature exceeds its limits (certificates, CRLs, archive time-stamps, hash index)"},
	{cades.ErrMalformed, codes.InvalidArgument, "a CAdES attribute of the signature is malformed (certificate-values, revocation-values, archive time-stamp, hash index)"},
	// The ArchiveService checks its input before ers sees it and answers
	// VerifyRecord with a verdict; these are the fallbacks.
	{ers.ErrNoDocuments, codes.InvalidArgument, "at least one document digest or record is required"},
	{ers.ErrHash, codes.InvalidArgument, "evidence records use SHA-256, SHA-384 or SHA-512, with digests of that length"},
	{ers.ErrTooLarge, codes.InvalidArgument, "the evidence record exceeds a bound (256 KiB, 16 chains, 64 time-stamps a chain, 64 tree levels)"},
	{ers.ErrMalformed, codes.InvalidArgument, "the input is not a well-formed DER evidence record (RFC 4998)"},
	{ers.ErrUnsupported, codes.InvalidArgument, "the evidence record uses cryptoInfos, encryptionInfo or attributes, which pecet does not read"},
	{ers.ErrNotCovered, codes.InvalidArgument, "the evidence record does not cover the document"},
	{ers.ErrRootMismatch, codes.InvalidArgument, "the evidence record's hash tree does not lead to its time-stamp"},
	{ers.ErrRenewal, codes.InvalidArgument, "the records cannot be renewed together, or a renewal does not cover what it renews"},
	{ers.ErrToken, codes.InvalidArgument, "an archive time-stamp of the evidence record was refused"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline exceeded"},
	{context.Canceled, codes.Canceled, "call cancelled"},
}

// Status converts err to a gRPC status error with a fixed message. An error
// that already is a status passes through. Unknown errors are Internal.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range table {
		if errors.Is(err, m.err) {
			return status.Error(m.code, m.msg)
		}
	}
	return status.Error(codes.Internal, "internal error; the server log has the details")
}

// InvalidArgument is for request validation in handlers: msg must contain
// only what the caller sent or fixed text.
func InvalidArgument(msg string) error { return status.Error(codes.InvalidArgument, msg) }

// PermissionDenied is for refusals in handlers: msg must contain only what
// the caller sent or configuration names.
func PermissionDenied(msg string) error { return status.Error(codes.PermissionDenied, msg) }
