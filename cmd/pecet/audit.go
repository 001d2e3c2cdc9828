package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/pecet-hsm/pecet/internal/audit"
)

const auditUsage = `Usage:
  pecet audit verify FILE...

Checks pecetd audit logs: every line's own hash, and that each line
carries the hash of the one before it, across files given oldest first
(audit.log.1 audit.log.2 audit.log after rotation). Names the first line
that was removed, reordered or edited. Works on the files alone; no server.

Exit status: 0 the chain is intact, 1 it is broken, 2 usage error or a
file cannot be read.
`

func runAudit(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, auditUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] != "verify" {
		fmt.Fprintf(os.Stderr, "pecet audit: unknown subcommand %q\n%s", args[0], auditUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("pecet audit verify", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "machine-readable JSON output")
	fs.Usage = func() { fmt.Fprint(fs.Output(), auditUsage) }
	if probe != nil {
		// Completion reads the flags; parse cannot be used here because
		// it refuses the FILE arguments.
		probe(fs)
		return exitOK
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "pecet audit verify: give at least one FILE")
		return exitUsage
	}
	var files []audit.File
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pecet audit verify: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		files = append(files, audit.File{Name: name, R: f})
	}
	res, err := audit.Verify(files...)
	var be *audit.BrokenError
	switch {
	case errors.As(err, &be):
		if *jsonOut {
			printJSON(map[string]any{"ok": false, "file": be.File, "line": be.Line, "reason": be.Reason})
		} else {
			fmt.Printf("BROKEN at %s line %d: %s\n", be.File, be.Line, be.Reason)
		}
		return exitInvalid
	case err != nil:
		fmt.Fprintf(os.Stderr, "pecet audit verify: %v\n", err)
		return exitUsage
	}
	if *jsonOut {
		printJSON(map[string]any{"ok": true, "lines": res.Lines, "first_seq": res.FirstSeq, "last_seq": res.LastSeq, "last_hash": res.LastHash})
		return exitOK
	}
	fmt.Printf("OK: %d lines, seq %d to %d, last hash %s\n", res.Lines, res.FirstSeq, res.LastSeq, res.LastHash)
	if res.FirstSeq != 1 {
		fmt.Printf("note: the chain starts at seq %d; the files before it were not given\n", res.FirstSeq)
	}
	return exitOK
}
