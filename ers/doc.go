// Package ers makes and verifies evidence records for long-term archiving
// (RFC 4998, Evidence Record Syntax): many documents are proven to have
// existed at one time by a single RFC 3161 time-stamp over the root of a
// Merkle tree of their hashes.
//
// Seal builds the hash tree of RFC 4998 section 4.2 (binary tree; each
// node is the hash of its children's hashes sorted in binary ascending
// order and concatenated), has the root time-stamped once, and returns one
// DER EvidenceRecord per document carrying its reduced hash tree. Parse
// reads a record within fixed bounds (MaxRecordBytes and the Max* counts).
// Verify recomputes the chain of hashes from a document's hash to the root
// (RFC 4998 section 5.3), checks the time-stamp's message imprint is that
// root, leaves the token's signature and chain to the caller's verifier,
// and returns the token's genTime as the proven existence time.
//
// Renewal (RFC 4998 section 5.2) works on a whole batch with one new
// time-stamp: RenewTimeStamps appends to each record's last chain an
// ArchiveTimeStamp over the hash of the token before (same hash algorithm);
// RenewHashTree adds a chain under a new algorithm over the document's
// hash bound to the hash of the record's ArchiveTimeStampSequence.
// VerifyRecord follows chains and renewals, has the caller's TokenJudge
// judge each token at the time the next one proves (the last at the
// validation time), and returns the earliest proven existence time.
//
// Not done yet: cryptoInfos and encryptionInfo (refused), the attributes
// field (refused). See docs/archive.md.
package ers
