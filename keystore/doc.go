// Package keystore keeps pecet's signing and decryption keys in a PKCS#11
// token (an HSM in production, SoftHSM2 in development and tests) and hands
// out crypto.Signer and crypto.Decrypter values that use them. It follows
// PKCS#11 v2.40 (OASIS, "PKCS #11 Cryptographic Token Interface Base
// Specification Version 2.40"). Keys are named by alias and version, not by
// RFC 7512 pkcs11: URIs; the token is chosen by Config (label, serial or
// slot) and the PIN comes from the caller, never from a URI. It is the only pecet package that speaks
// PKCS#11; protocol code (signer, envelope, tsa) sees only the crypto
// interfaces, a Version and its certificate chain.
//
// It does not build CMS, check certificate policy, audit, or map errors to
// gRPC codes: those are other packages' jobs. It does not keep anything
// about keys off the token, so any number of processes can share one token.
//
// # Why github.com/miekg/pkcs11 and not crypto11
//
// The package calls github.com/miekg/pkcs11 directly, through an interface
// (Module) that lists only the calls it makes and is implemented by
// *pkcs11.Ctx, as letsencrypt/boulder's pkcs11helpers.PKCtx does. That
// interface is where a test counts C_Login calls or a wrapper (OpenWith)
// injects faults (a lost session, a removed device). Owning the session pool and caching
// object handles keeps the cost per signature close to the raw token rate
// (the goal is ≥ 0.9 of it; crypto11 costs 5 to 20%: see the benchmarks,
// BenchmarkSignRSA2048 and BenchmarkSignECP256, which use crypto11 only as
// the comparison).
//
// # Module, login, sessions
//
// C_Initialize and the login state are per process, not per session, so a
// process-wide registry loads each module path once and calls C_Finalize only
// when its last Store closes (CKR_CRYPTOKI_ALREADY_INITIALIZED from a module
// something else initialised is fine). Open calls C_Login exactly once;
// CKR_PIN_INCORRECT and CKR_PIN_LOCKED become ErrPINIncorrect and
// ErrPINLocked and are never retried, since an HSM locks the PIN after a few
// failures. The session the login ran on stays open for the Store's
// lifetime, so closing pooled sessions never logs the process out. A second
// Store on the same token in one process finds the user logged in already
// (and so cannot check its own PIN); only the last one logs out.
//
// Operations take a session from a bounded pool (Config.MaxSessions, default
// 16), opened lazily, each used by one goroutine at a time; waiting for one
// is bounded by the caller's context (ErrPoolExhausted). So is the call
// itself: a PKCS#11 call cannot be interrupted, so when the context ends
// first the caller gets its error at once and the call finishes in the
// background, returning its session when the token answers. A session the
// token reports lost (CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED) is
// discarded with its idle siblings and the operation runs once more on a
// fresh one.
//
// # When the token goes away
//
// CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT, a logged-out or lost login
// session (found by an operation or by Ping) put the Store in recovery:
// calls and Ping fail at once with ErrTokenUnavailable while a goroutine
// brings the token back. It waits until no call is in flight on the module
// (a read-write gate that every call holds for reading: C_Finalize under a
// running call is undefined), finalises and initialises the module (once,
// for every Store in the process that shares it), finds the token again by
// label or serial, logs in exactly once and reads the keys again; until it
// succeeds it retries after Config.RetryInterval, doubling up to 30s.
// Object handles and sessions carry the module generation they were made
// in and are never used in a later one (the numbers are reused for other
// objects). A PIN refused while logging in again is permanent:
// ErrPINIncorrect or ErrPINLocked from every call and from Ping until the
// Store is closed, with no further attempt. The test-only package
// internal/faultinject injects these failures through OpenWith for the
// tests and the soak; a release pecetd never links it.
//
// # Keys on the token
//
// A key is an alias (^[a-z0-9][a-z0-9._-]{0,63}$) with numbered versions.
// For version 3 of alias "cssz-decrypt":
//
//	private key  CKO_PRIVATE_KEY  CKA_LABEL "cssz-decrypt"  CKA_ID "3"
//	             token, private, sensitive, never extractable; CKA_SIGN for
//	             SIGN and TIMESTAMP keys, CKA_DECRYPT (RSA only) for DECRYPT
//	public key   CKO_PUBLIC_KEY   CKA_LABEL "cssz-decrypt"  CKA_ID "3"
//	certificate  CKO_CERTIFICATE  CKA_LABEL "cssz-decrypt"  CKA_ID "3"
//	             CKC_X_509, CKA_VALUE the leaf DER, category "token user";
//	             private (older releases wrote public ones: still read)
//	issuers      CKO_CERTIFICATE  CKA_LABEL "cssz-decrypt"  CKA_ID "3/1", "3/2", ...
//	             the rest of the chain in order, category "authority"
//	metadata     CKO_DATA         CKA_LABEL "cssz-decrypt"  CKA_APPLICATION "pecet"
//	             one per alias, private, CKA_VALUE a small JSON document:
//	             purpose, algorithm, primary version, each version's state,
//	             creation time, whether it has been primary, its public
//	             key's SHA-256 and its chain's certificates' SHA-256 (the
//	             chain in force), a generation counter and a per-write nonce
//	request      CKO_DATA         CKA_LABEL "<id>"  CKA_APPLICATION "pecet-request"
//	             private, CKA_VALUE opaque bytes (≤ 64 KiB) of a pending
//	             dual-control request (PutRequest, ListRequests, GetRequest,
//	             DeleteRequest); kept on the token so every replica sees it
//	state        CKO_DATA         CKA_LABEL "<name>"  CKA_APPLICATION "pecet-state"
//	             private, CKA_VALUE the caller's bytes: an app state the
//	             server keeps on the token (PutAppState, GetAppState)
//
// This is the one description of the layout; the code that writes each
// object points here.
//
// Issuer certificates are certificate objects rather than data objects so
// that ordinary PKCS#11 tools show them as certificates; their "v/n" ids
// never collide with a key's "v" id, so tools that pair keys and
// certificates by CKA_ID pair only the leaf.
//
// The metadata says what attributes cannot: SIGN and TIMESTAMP keys look
// alike to PKCS#11, and states are pecet's. Tokens may refuse to modify a
// data object (SoftHSM 2.6 does), so a change writes the next generation as a
// new object and then destroys the old; readers take the highest generation
// (the smallest nonce among equals). The destroy decides a race between two
// replicas: the loser removes its object and tries again (lifecycle.go).
// Every load checks each certificate against the private key (RSA modulus)
// or the public key recorded in the metadata (EC): certificate and public
// key objects may be writable without login, and a mismatch refuses the
// version (Version.Problem, ErrVersionRefused).
// A version is PENDING_CERTIFICATE until ImportCertificate stores a chain
// whose leaf holds the version's public key, then ENABLED, and primary if the
// alias had no primary yet. ImportCertificate writes the new certificate
// objects beside the old ones, commits them with the metadata that names
// them, and only then removes the old ones: any failure leaves the old
// chain and metadata in force, or the new ones, never a mix
// (docs/security.md "Importing a certificate"). Destroying a version destroys its private key
// and public key objects; its certificates and the DESTROYED record remain
// (the primary and ENABLED versions cannot be destroyed).
//
// ProofSigner signs with a version in any state that still has its private
// key (a CSR for a pending version); for DECRYPT keys, which may not
// CKA_SIGN, it builds an EMSA-PKCS1-v1_5 block and applies CKM_RSA_X_509.
// CheckCertificateUsage says whether a certificate's key usage fits a
// purpose; the KeyService calls it before ImportCertificate.
//
// Lookups are cached per alias, with the object handles, for Config.CacheTTL
// (default 500ms): Signer and Decrypter do no C_FindObjects while the entry
// is fresh, and when it expires under load concurrent callers share one
// read. A miss (unknown alias, unknown or not enabled version) always
// reads the token again, so a key another process just created or certified
// is found at once.
//
// # Mechanisms
//
// Signatures: CKM_RSA_PKCS over a DigestInfo built here (PKCS#1 v1.5),
// CKM_RSA_PKCS_PSS (salt length = hash length for PSSSaltLengthAuto and
// PSSSaltLengthEqualsHash), CKM_ECDSA over the digest, with the token's
// r||s turned into the ASN.1 form crypto/ecdsa produces. Decryption:
// CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP, and CKM_RSA_X_509 for DecryptRaw.
// C_GetMechanismList is read once at Open (Store.Capabilities). It cannot
// tell which OAEP hashes work: SoftHSM 2.6 lists CKM_RSA_PKCS_OAEP but fails
// SHA-256 parameters with CKR_ARGUMENTS_BAD. So the answer is learnt on first
// use (or by KeyDecrypter.SupportsOAEP) and remembered; when it is no, the
// envelope layer uses DecryptRaw and removes OAEP-SHA256 or PKCS#1 v1.5
// padding itself, in constant time.
package keystore
