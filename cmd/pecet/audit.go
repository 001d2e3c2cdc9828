package main

import (
	"crypto"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/pki"
)

const auditUsage = `Usage:
  pecet audit verify [--max-age 10m] [--json] --cert AUDIT.pem FILE...
  pecet audit verify [--json] --unsigned -- FILE...

Checks pecetd audit logs offline (no server), files given oldest first
(audit.log.1 audit.log.2 audit.log after rotation):
  - every line's own hash, and that each line carries the hash of the one
    before it, across files;
  - every signed line (genesis, checkpoint, rotated, break) against the
    audit key's certificate or public key (--cert, PEM; repeat it for the
    keys of earlier versions), and that the line it vouches for is in the
    chain: a log rewritten with recomputed hashes fails here;
  - that the log starts at seq 1 or at a signed hand-over from a previous
    file, and ends in a signed checkpoint that vouches for every line
    before it, at most --max-age old.
Names the first line that was removed, reordered, edited or forged.
--unsigned checks the hash chain alone, which anyone can recompute: it
proves nothing against whoever could write the file.

Exit status: 0 OK; 1 BROKEN (a line removed, reordered, edited or forged,
or the log does not start at seq 1 or a signed hand-over); 2 usage error
or a file cannot be read; 5 INCOMPLETE: the chain holds but its end is not
vouched for by a signed checkpoint (newer than --max-age): lines may have
been cut from the end (or pecetd is still writing: verify again after the
next checkpoint).

Flags:
`

// runAuditVerify is `pecet audit verify`: it reads local files and takes
// FILE arguments, so it parses its own flags.
func runAuditVerify(args []string) int {
	fs := flag.NewFlagSet("pecet audit verify", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, "machine-readable JSON output")
	var certs stringList
	fs.Var(&certs, "cert", "the audit key's certificate or public key (PEM `file`; repeatable)")
	maxAge := fs.Duration("max-age", 0, "INCOMPLETE unless the last signed checkpoint is at most this old (e.g. 10m; 0: any age)")
	unsigned := fs.Bool("unsigned", false, "check the hash chain only, without signatures (proves nothing against a rewrite)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), auditUsage)
		fs.PrintDefaults()
	}
	if code := parseArgs(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "pecet audit verify: give at least one FILE")
		return exitUsage
	}
	if (len(certs) == 0) == !*unsigned {
		fmt.Fprintln(os.Stderr, "pecet audit verify: give --cert AUDIT.pem (the audit key's certificate), or --unsigned for the bare hash chain")
		return exitUsage
	}
	if *maxAge < 0 || (*maxAge > 0 && *unsigned) {
		fmt.Fprintln(os.Stderr, "pecet audit verify: --max-age needs signatures (--cert) and a positive duration")
		return exitUsage
	}
	var keys []crypto.PublicKey
	for _, c := range certs {
		// The first CERTIFICATE (the leaf: a chain's CA keys must not
		// vouch for a log) and every PUBLIC KEY of the file.
		b, err := pki.ReadFile(c, pki.MaxCertificateFile)
		var ks []crypto.PublicKey
		if err == nil {
			ks, err = pki.PublicKeys(c, b)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pecet audit verify: --cert: %v\n", err)
			return exitUsage
		}
		keys = append(keys, ks...)
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
	var (
		res audit.Result
		err error
	)
	if *unsigned {
		res, err = audit.Verify(files...)
	} else {
		res, err = audit.VerifySigned(audit.VerifyOptions{Keys: keys, MaxAge: *maxAge}, files...)
	}
	var (
		be *audit.BrokenError
		ie *audit.IncompleteError
	)
	switch {
	case errors.As(err, &be):
		if *jsonOut {
			printJSON(map[string]any{"ok": false, "status": "BROKEN", "file": be.File, "line": be.Line, "reason": be.Reason})
		} else {
			fmt.Printf("BROKEN at %s line %d: %s\n", be.File, be.Line, be.Reason)
		}
		return exitInvalid
	case errors.As(err, &ie):
		if *jsonOut {
			printJSON(map[string]any{"ok": false, "status": "INCOMPLETE", "reason": ie.Reason, "lines": res.Lines,
				"last_seq": res.LastSeq, "last_signed_seq": res.LastSignedSeq, "last_signed": signedTime(res)})
		} else {
			fmt.Printf("INCOMPLETE: %s\n", ie.Reason)
		}
		return exitIncomplete
	case err != nil:
		fmt.Fprintf(os.Stderr, "pecet audit verify: %v\n", err)
		return exitUsage
	}
	if *jsonOut {
		printJSON(map[string]any{"ok": true, "status": "OK", "lines": res.Lines, "first_seq": res.FirstSeq, "last_seq": res.LastSeq,
			"last_hash": res.LastHash, "log": res.Log, "checkpoints": res.Checkpoints, "last_signed": signedTime(res), "break": res.Break, "signed": !*unsigned})
		return exitOK
	}
	if *unsigned {
		fmt.Printf("OK (UNSIGNED: the hash chain alone): %d lines, seq %d to %d, last hash %s\n", res.Lines, res.FirstSeq, res.LastSeq, res.LastHash)
		if res.FirstSeq != 1 {
			fmt.Printf("note: the chain starts at seq %d; the files before it were not given\n", res.FirstSeq)
		}
		return exitOK
	}
	fmt.Printf("OK: %d lines, seq %d to %d, log %s, %d signed checkpoints, the last at %s\n",
		res.Lines, res.FirstSeq, res.LastSeq, res.Log, res.Checkpoints, signedTime(res))
	if res.FirstSeq != 1 {
		fmt.Printf("note: starts at a signed hand-over (seq %d); the files before it were not given\n", res.FirstSeq)
	}
	if res.Break != "" {
		fmt.Printf("note: this log starts after a break: %s\n", res.Break)
	}
	return exitOK
}

func signedTime(res audit.Result) string {
	if res.LastSigned.IsZero() {
		return ""
	}
	return res.LastSigned.UTC().Format(time.RFC3339)
}
