// Package audit writes pecet's tamper-evident audit log: one JSON line per
// security-relevant event (a key operation before it runs and its outcome
// after, every key lifecycle change, every denied call), each line carrying
// the SHA-256 of the line before it, with checkpoints signed by a key on the
// token, and checks such logs (VerifySigned; Verify for the bare chain).
//
// # Line format
//
// A line is a JSON object (RFC 8259) whose members come in a fixed order and
// whose last member is "hash":
//
//	{"time":"2026-05-01T10:00:00.123Z","seq":7,"phase":"begin","call":"…",
//	 "caller":"officer","role":"officer","rpc":"/pecet.v1.KeyService/RotateKey",
//	 "key":"client-sign","version":2,"input_sha256":"…","outcome":"","code":"",
//	 "prev":"<hash of line 6>","hash":"<SHA-256 of this line without ,"hash":…>"}
//
// hash is the lowercase hex SHA-256 of the line with its final
// `,"hash":"…"` member removed (the bytes up to it, then "}"). prev is the
// hash of the previous line; the very first line of a log has 64 zeros.
// seq counts lines from 1 across files. So an edited line fails its own
// hash (or, if the hash was recomputed, the next line's prev), a removed
// or reordered line breaks seq and prev, and Verify names the first line
// that does not fit. Whoever can write the file can recompute all of that,
// though, and cut its tail: hence signed checkpoints.
//
// # Signed checkpoints (checkpoint.go, docs/security.md "Audit log")
//
// With Options.Checkpoint, signed lines carry the members log (the log's
// random id), cp_seq and cp_hash (the line they vouch for; 0 and the
// genesis hash for a log's first line), note (break lines), key_id and sig
// (base64; ECDSA ASN.1 or RSA PKCS#1 v1.5 over signedDigest). A new log
// starts with "genesis"; a "checkpoint" comes every Interval and at Close,
// signed outside the lock for the line that was last when signing began; a
// full file ends in a checkpoint that vouches for its last line and the
// next starts with a signed "rotated" hand-over; "break" starts a log after
// a refused resume. The token keeps the last signed line's seq and hash per
// log, and Open refuses (ErrResume) a file that does not reach it or
// differs at it. VerifySigned wants a log that starts at seq 1 or at a
// signed hand-over (else *BrokenError) and ends in a checkpoint vouching
// for the line before it, newer than MaxAge (else *IncompleteError). Lines
// are also mirrored to stderr as slog JSON (with their hash) for shipping
// off the host and alerting: which ones, Options.MirrorLevel says (default
// MirrorErrors: denials, failures, key lifecycle changes and the log's own
// lines, whose signed checkpoints let a shipped copy show a cut file).
//
// Never in a line: the input itself, PINs, birth numbers (rodná čísla) or
// any other content. Only its SHA-256, the key alias and version, the
// caller's identity and role, the RPC, the outcome and the gRPC code.
//
// # Durability (fsync policy)
//
// Each event is written with one write(2) on an O_APPEND file (no user-space
// buffer to lose: a crash of the process loses no complete line). With
// SyncEvent (the default) Write also returns only once the line is on disk
// (fdatasync(2) on Linux, fsync(2) elsewhere: for an appended line both
// flush the data and the new file size; fdatasync skips the modification
// time, which reading the line back does not need); Append does not wait.
// Under SyncEvent the server's Begin is Append and its End is Write, so one
// fsync per operation makes both lines durable before any result (a
// signature, a plaintext, a changed key) leaves the service. Concurrent
// writers share fsyncs (group commit): a Write waits for one fsync that
// began after its line was written, and many lines ride on one fsync. At most one fsync runs at a time; when it
// ends, all the writers it covered return at once and one of the others
// starts the next fsync for every line written by then.
//
// BenchmarkWrite measured on the 2-core development VM (ext4 on a virtual
// disk), next to a raw EC P-256 signature on SoftHSM (about 7000/s): an
// fsynced event costs about 0.4 ms alone (2.9 raw signatures) and about
// 0.1 ms per event with 16 concurrent writers (0.8 raw signatures); without
// fsync an event costs 5 µs (0.03). A real HSM signs far slower than
// SoftHSM, so the share shrinks there; SyncNone (page cache only: a machine
// crash may lose the last lines) is for tests and for hosts whose storage
// is battery-backed, configured as audit.sync: none.
//
// # Write-ahead (SyncBegin, audit.sync: begin)
//
// With SyncEvent a call pays a whole fsync after its token operation. With
// SyncBegin the server writes a key operation's begin line with Begin,
// which also starts an fsync covering it in the background (group commit
// as above), so the fsync runs while the token works; End appends the end
// line (one write(2): it survives a crash of pecetd) without waiting for
// it, and returns once the begin line is durable, which by then it usually
// is. The end line becomes durable with the next fsync: a later Begin's,
// or a flush that runs every FlushInterval (default 100 ms) when lines are
// pending, or Close. What is guaranteed:
//
//   - No result of a key operation (a signature, a plaintext, a time-stamp
//     token, a DecryptStream's first output) leaves pecetd unless the line
//     recording who asked for which operation, with which key, on which
//     input (its SHA-256) is on disk.
//   - After a machine crash (power loss, kernel panic) the end lines
//     written in at most the last FlushInterval (plus the time of the fsync
//     under way) may be missing: a begin line without its end line means
//     the operation may have completed and its result may have been
//     returned. A crash of pecetd alone loses no written line under any
//     policy.
//   - Denied lines, start and stop lines, rotated lines and every line of
//     a KeyService call (the server writes its end line with Write) are
//     durable before Write returns, as with SyncEvent: a key's lifecycle
//     must be known after a crash, not only that it may have changed.
//
// With SyncEvent (the default) both lines of a key operation are durable
// before its result leaves. Two results leave while their handler runs:
// a DecryptStream's output and a POST /tsa response. A stream's begin line
// is written with BeginAhead, so under SyncEvent too its first output
// waits until the begin line is on disk (the end line's fsync then holds
// the final status, without which the client discards the output). Under
// SyncBegin a POST /tsa response waits for its begin line; under SyncEvent
// only net/http's response buffer holds it until the end line's fsync (a
// response larger than that buffer may leave before it).
//
// Measured (docs/performance.md, "audit.sync: begin"): SyncBegin saves
// part of a call's latency where the token operation is longer than an
// fsync (RSA-2048: ratio to the raw rate 0.43 → 0.49 at one caller, 0.58
// → 0.64 at 16); for P-256 at 16 callers, where an fsync is under way all
// the time, it gains nothing measurable: it hides fsyncs, it does not
// remove them. SyncEvent stays the default.
//
// A Write that fails (disk full, file removed, I/O error) makes the Log
// fail every later Write too, until the process restarts: the chain's state
// is then unknown, and the server refuses key operations (fail closed,
// Unavailable) rather than run them unaudited. Under SyncBegin a failed
// background fsync fails the call waiting for it (End or Begun.Wait) the
// same way, and a failed flush fails the next call.
//
// # Files and rotation
//
// One process writes one file, holding an exclusive flock(2) on it, so two
// pecetd processes configured with the same file refuse to start rather
// than interleave two chains. With MaxBytes set, a full file is renamed to
// FILE.1, FILE.2, … (higher is newer) and a new FILE begins with a
// "rotated" line whose prev is the hash of the old file's last line (with
// checkpoints: signed, by the checkpoint goroutine, a moment after the
// file passed MaxBytes); a restart continues the chain from the last line
// of FILE, or of the newest FILE.n when FILE is empty. Verify takes the files oldest first
// (`pecet audit verify audit.log.1 audit.log.2 audit.log`).
package audit
