package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// globalFlag is a connection flag given before the command word
// (`pecet --server X sign …`).
type globalFlag struct{ name, value string }

// globals are the flags given before the command, applied by parseFlags to
// the command's flag set where the command did not give them itself.
var globals []globalFlag

// globalFlagNames are the flags pecet takes before the command (all take a
// value), for messages and completion.
var globalFlagNames = []string{"server", "cert", "key-file", "ca", "dev-dir", "as", "timeout"}

// globalNames lists the flags pecet takes before the command, for messages.
const globalNames = "--server, --cert, --key-file, --ca, --dev-dir, --as, --timeout"

// splitGlobals parses the global flags before the command word. It returns
// the words from the command on, or an exit code >= 0 when pecet must stop
// (a usage error names the flag).
func splitGlobals(args []string) ([]globalFlag, []string, int) {
	fs := flag.NewFlagSet("pecet", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The same connection flags every command has (newFlagsCert); parsed
	// here with their types, so a bad --timeout is refused before the command.
	for _, name := range globalFlagNames {
		if name == "timeout" {
			fs.Duration(name, 30*time.Second, "")
		} else {
			fs.String(name, "", "")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return nil, nil, exitOK
		}
		fmt.Fprintf(os.Stderr, "pecet: %v (before the command pecet takes %s)\n", err, globalNames)
		return nil, nil, exitUsage
	}
	var out []globalFlag
	fs.Visit(func(f *flag.Flag) { out = append(out, globalFlag{f.Name, f.Value.String()}) })
	return out, fs.Args(), -1
}

// applyGlobals sets the global flags on a command's flag set, except those
// the command line gave again after the command (the later one wins, as
// with any repeated flag). --cert is the TLS client certificate: it goes to
// --client-cert where a command names it so (chain verify, timestamp), and
// is refused by commands that do not call pecetd (audit verify's --cert is
// another certificate). A global flag the command does not take is a usage
// error naming it.
func applyGlobals(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, g := range globals {
		name := g.name
		if name == "cert" && fs.Lookup("client-cert") != nil {
			name = "client-cert"
		}
		f := fs.Lookup(name)
		if f == nil || (g.name == "cert" && fs.Lookup("server") == nil) {
			return fmt.Errorf("--%s (before the command) does not apply to this command", g.name)
		}
		if given[name] {
			continue
		}
		if err := fs.Set(name, g.value); err != nil {
			return fmt.Errorf("--%s: %w", g.name, err)
		}
	}
	return nil
}
