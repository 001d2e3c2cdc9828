// Package archtest holds no code: its test enforces the import rules of
// docs/architecture.md on the real import graph (`go list -deps -json`).
package archtest
