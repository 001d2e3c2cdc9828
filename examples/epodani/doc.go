// Package epodani is the e-podání example (README "The e-podání example"):
// a client (examples/epodani/client) that signs, gzips and encrypts a ČSSZ
// PRIHL filing, and a gateway (examples/epodani/gateway) that decrypts it on
// the HSM, gunzips it within a bound and verifies the signature, both
// through pecet's public gRPC API only. The test in this folder runs them
// against a real pecetd --dev.
package epodani
