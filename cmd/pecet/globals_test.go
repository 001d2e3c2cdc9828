package main

import (
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/client"
)

// withRows adds rows to the command table for one test.
func withRows(t *testing.T, rows ...command) {
	t.Helper()
	saved := commands
	commands = append(slices.Clone(commands), rows...)
	t.Cleanup(func() { commands, globals = saved, nil })
}

// seen records what a test row's function was given.
type seen struct {
	opts    client.Options
	timeout time.Duration
	judged  string // a client-cert row's own --cert
}

// connRecorder is a leaf that records its connection flags instead of dialing.
func connRecorder(got *seen, certFlag string) *leaf {
	return &leaf{role: "client", certFlag: certFlag, define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		judged := new(string)
		if certFlag == "client-cert" {
			judged = fs.String("cert", "", "the certificate judged")
		}
		return func(x *call) (int, error) {
			*got = seen{opts: x.c.opts, timeout: x.c.timeout, judged: *judged}
			return exitOK, nil
		}
	}}
}

// TestGlobalFlagsPosition: the connection flags work before the command
// (pecet --server X sign …) as after it, the one after the command wins,
// and before a command that names its TLS certificate --client-cert, --cert
// is that one (not the command's own --cert).
func TestGlobalFlagsPosition(t *testing.T) {
	var got seen
	withRows(t, command{"test-conn", "records its connection flags", connRecorder(&got, "")},
		command{"test-judge", "records its connection flags; --cert is judged", connRecorder(&got, "client-cert")})
	all := []string{"--server", "h:1", "--cert", "c.pem", "--key-file", "k.pem", "--ca", "ca.pem", "--dev-dir", "d", "--as", "officer", "--timeout", "7s"}
	want := seen{opts: client.Options{Server: "h:1", Cert: "c.pem", Key: "k.pem", CA: "ca.pem", DevDir: "d", Role: "officer"}, timeout: 7 * time.Second}
	for _, tc := range []struct {
		name string
		args []string
		want seen
	}{
		{"after the command", append([]string{"test-conn"}, all...), want},
		{"before the command", append(slices.Clone(all), "test-conn"), want},
		{"after wins", []string{"--server", "before:1", "--timeout", "1s", "test-conn", "--server", "after:2"},
			seen{opts: client.Options{Server: "after:2", Role: "client"}, timeout: time.Second}},
		{"--cert before a client-cert command", []string{"--cert", "tls.pem", "test-judge", "--cert", "leaf.pem"},
			seen{opts: client.Options{Cert: "tls.pem", Role: "client"}, timeout: 30 * time.Second, judged: "leaf.pem"}},
		{"--client-cert after wins over --cert before", []string{"--cert", "tls.pem", "test-judge", "--client-cert", "other.pem"},
			seen{opts: client.Options{Cert: "other.pem", Role: "client"}, timeout: 30 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = seen{}
			var code int
			out := capture(func() { code = run(tc.args) })
			if code != exitOK {
				t.Fatalf("pecet %v: exit %d\n%s", tc.args, code, out)
			}
			if got != tc.want {
				t.Errorf("pecet %v:\n got %+v\nwant %+v", tc.args, got, tc.want)
			}
		})
	}
}

// TestGlobalFlagsRefused: a flag before the command that pecet does not take
// there, or that the command does not take, is a usage error (exit 2) whose
// message names the flag; nothing runs.
func TestGlobalFlagsRefused(t *testing.T) {
	var got seen
	withRows(t, command{"test-conn", "records its connection flags", connRecorder(&got, "")})
	for _, tc := range []struct {
		args []string
		want string // in the message
	}{
		{[]string{"--bogus", "test-conn"}, "-bogus"},
		{[]string{"--json", "test-conn"}, "-json"},
		{[]string{"--timeout", "soon", "test-conn"}, "-timeout"},
		{[]string{"--server", "h:1", "version"}, "--server"},
		{[]string{"--dev-dir", "d", "completion", "bash"}, "--dev-dir"},
		// audit verify's --cert is the audit key's, not the TLS one.
		{[]string{"--cert", "c.pem", "audit", "verify", "--unsigned", "audit.log"}, "--cert"},
		{[]string{"--server", "h:1"}, "Usage:"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got = seen{}
			var code int
			out := capture(func() { code = run(tc.args) })
			if code != exitUsage {
				t.Errorf("exit %d, want %d (usage)\n%s", code, exitUsage, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("message %q does not name %s", out, tc.want)
			}
			if got != (seen{}) {
				t.Errorf("the command ran: %+v", got)
			}
		})
	}
}
