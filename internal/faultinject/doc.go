// Package faultinject makes a real PKCS#11 token fail on demand, for the
// tests and the soak (docs/reliability.md): Faults sits between a
// keystore.Store and its module (keystore.OpenWith), and a Schedule
// injects one fault after another (lost sessions, a removed token, a slow
// token) and reports each fault's window. It is test tooling: imported by
// tests and by a pecetd built with -tags faultinject, never by a release
// build (docs/architecture.md, rule 7; internal/archtest holds it).
package faultinject
