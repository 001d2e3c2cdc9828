// Package e2e holds the end-to-end tests: they build pecetd and pecet, start
// pecetd --dev on real loopback sockets with mTLS and a real SoftHSM2 token,
// drive it with the pecet binary, and use the openssl binary as the
// interoperability peer. It has no non-test code.
package e2e
