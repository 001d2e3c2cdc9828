// Command pecet is the command-line client of pecetd.
package main

import (
	"fmt"
	"os"
)

// Exit codes (README.md "Five-minute tour", `pecet --help`).
const (
	exitOK            = 0 // success, or a VALID verdict
	exitInvalid       = 1 // INVALID verdict
	exitUsage         = 2 // usage error
	exitIndeterminate = 3 // INDETERMINATE verdict
	exitService       = 4 // service error: unavailable, denied, not found, invalid argument
	// exitIncomplete: `pecet audit verify` found an intact chain whose end
	// is not vouched for by a signed checkpoint (newer than --max-age).
	exitIncomplete = 5
)

type command struct {
	name    string
	summary string
	run     func(args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"sign", "make a CMS signature with a key on the HSM", runSign},
		{"verify", "verify a CMS signature and judge the signer's chain", runVerify},
		{"encrypt", "encrypt a file to certificates or pecet keys (CMS EnvelopedData)", runEncrypt},
		{"decrypt", "decrypt a CMS EnvelopedData with a key on the HSM", runDecrypt},
		{"keys", "list, show and manage keys (create, rotate, csr, import-cert, set-primary, …)", runKeys},
		{"audit", "check an audit log's hash chain (audit verify FILE...)", runAudit},
		{"bench", "load pecetd with one operation; ops/s, latency, errors, ratio to the raw token rate", runBench},
		{"chain", "judge a certificate chain under a policy (chain verify --cert FILE)", runChain},
		{"policy", "list and show validation policies (policy list, policy show NAME)", runPolicy},
		{"timestamp", "get an RFC 3161 time-stamp (timestamp verify: check one)", runTimestamp},
		{"archive", "evidence records (RFC 4998): archive seal, renew, verify", runArchive},
		{"version", "print the version and commit", runVersion},
		{"completion", "print a shell completion script (bash, zsh, fish)", runCompletion},
	}
}

const usageHead = `pecet: the command-line client of pecetd (signing, verification, time-stamps and keys in an HSM)

Usage:
  pecet COMMAND [flags]

Commands:
`

const usageTail = `
pecet finds the dev folder by itself (./.pecet-dev, or --dev-dir, or
PECET_DEV_DIR) and uses the client certificate of the role the command
needs (--as client|gateway|officer|officer-2 to choose). Otherwise give --server,
--cert, --key-file and --ca (or PECET_SERVER, PECET_CERT, PECET_KEY, PECET_CA);
--key names a key on the HSM. (chain verify and timestamp take the TLS client
certificate as --client-cert: there --cert is the certificate judged.)

Exit status: 0 success or VALID, 1 INVALID, 2 usage error,
3 INDETERMINATE, 4 service error (unavailable, denied, not found,
invalid argument), 5 INCOMPLETE (audit verify: the log's end is not
vouched for by a signed checkpoint).

Run 'pecet COMMAND --help' for a command's flags.
`

func usage() {
	fmt.Fprint(os.Stderr, usageHead)
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprint(os.Stderr, usageTail)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		os.Exit(exitOK)
	}
	for _, c := range commands {
		if c.name == name {
			os.Exit(c.run(os.Args[2:]))
		}
	}
	fmt.Fprintf(os.Stderr, "pecet: unknown command %q\n\n", name)
	usage()
	os.Exit(exitUsage)
}
