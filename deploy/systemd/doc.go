// Package systemd holds pecetd's systemd unit, pecetd.service, and the test
// that keeps it honest: `systemd-analyze verify` accepts it (where the tool
// is installed), its hardening directives are on, and its command line and
// paths agree with pecetd's flags and with docs/operations.md. It has no
// code; see systemd.exec(5), systemd.service(5) and sd_notify(3).
package systemd
