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
// Not done yet: renewal (time-stamp renewal and hash-tree renewal of RFC
// 4998 section 5.2, i.e. more than one ArchiveTimeStamp or chain is parsed
// but Verify refuses it), cryptoInfos and encryptionInfo (refused), the
// attributes field (refused), and the RPC and CLI. See docs/archive.md.
package ers
