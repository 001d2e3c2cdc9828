// Package soak runs the soak of docs/reliability.md "Soak" against a real
// pecetd process: a mixed
// load (sign, verify, encrypt, decrypt, timestamp) from `pecet bench --op
// mix` at a fraction of its measured peak, open loop, while a pecetd built
// with -tags faultinject injects token faults on a schedule, and it checks
// what came out: every answer right, errors only inside the fault windows
// pecetd logged, the audit log's hash chain intact (`pecet audit verify`)
// and every answered call audited exactly once (one begin line with the
// call's input_sha256, one end line whose outcome agrees with the answer),
// and pecetd's resident set (VmRSS, /proc/PID/status) sampled throughout.
//
// The records are `pecet bench --record` lines, the fault windows pecetd's
// PECET_FAULT_LOG lines (internal/daemon/faultinject.go), the audit lines
// internal/audit's format. `go run ./scripts/perf soak` drives it;
// docs/reliability.md has the command and the results.
package soak
