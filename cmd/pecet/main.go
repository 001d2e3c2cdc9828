// Command pecet is the command-line client of pecetd.
package main

import (
	"fmt"
	"os"
	"strings"
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

// commands is the command table (the row type and how rows run: table.go).
// A command with its own `func runX(args []string) int` is one row:
// {"x", "summary", runX}.
var commands []command

func init() {
	commands = []command{
		{"sign", "make a CMS signature with a key on the HSM", runSign},
		{"verify", "verify a CMS signature and judge the signer's chain", verifyCmd},
		{"augment", "raise a CAdES signature to level T, LT or LTA (time-stamps, validation material)", runAugment},
		{"encrypt", "encrypt a file to certificates or pecet keys (CMS EnvelopedData)", encryptCmd},
		{"decrypt", "decrypt a CMS EnvelopedData with a key on the HSM", decryptCmd},
		{"keys", "list, show and manage keys (create, rotate, csr, import-cert, set-primary, …)", nil},
		{"keys list", "list the keys, their versions and states", keysList},
		{"keys show", "show one key and its versions", keysShow},
		{"keys create", "create a key (officer)", keysCreate},
		{"keys rotate", "make a new version of a key (officer)", keysRotate},
		{"keys csr", "make a certificate request signed on the token (officer)", keysCSR},
		{"keys import-cert", "import a version's certificate chain (officer)", keysImport},
		{"keys set-primary", "make a version the one that signs (officer)", keysVersionOp("set-primary")},
		{"keys disable", "disable a version (officer)", keysVersionOp("disable")},
		{"keys enable", "enable a disabled version (officer)", keysVersionOp("enable")},
		{"keys destroy", "destroy a version's key objects (officer)", keysVersionOp("destroy")},
		{"keys requests", "list the requests awaiting a second officer", keysRequests},
		{"keys approve", "approve another officer's request (officer)", keysApprove},
		{"audit", "check an audit log's hash chain (audit verify FILE...)", nil},
		{"audit verify", "check audit logs offline", runAuditVerify},
		{"bench", "load pecetd with one operation; ops/s, latency, errors, ratio to the raw token rate", runBench},
		{"chain", "judge a certificate chain under a policy (chain verify --cert FILE)", nil},
		{"chain verify", "judge a certificate chain under a policy", chainVerify},
		{"policy", "list and show validation policies (policy list, policy show NAME)", nil},
		{"policy list", "list the validation policies", policyList},
		{"policy show", "show one validation policy", policyShow},
		{"timestamp", "get an RFC 3161 time-stamp (timestamp verify: check one)", runTimestamp},
		{"timestamp verify", "check an RFC 3161 time-stamp locally", runTimestampVerify},
		{"archive", "evidence records (RFC 4998): archive seal, renew, verify", nil},
		{"archive seal", "seal documents under one time-stamp: NAME.ers beside each", runArchiveSeal},
		{"archive renew", "renew a batch's records (new time-stamp, or new hash with --hash)", runArchiveRenew},
		{"archive verify", "judge a document's evidence record", runArchiveVerify},
		{"version", "print the version and commit", runVersion},
		{"completion", "print a shell completion script (bash, zsh, fish)", runCompletion},
	}
}

const usageHead = `pecet: the command-line client of pecetd (signing, verification, time-stamps and keys in an HSM)

Usage:
  pecet [global flags] COMMAND [flags]

Commands:
`

const usageTail = `
pecet finds the dev folder by itself (./.pecet-dev, or --dev-dir, or
PECET_DEV_DIR) and uses the client certificate of the role the command
needs (--as client|gateway|officer|officer-2 to choose). Otherwise give --server,
--cert, --key-file and --ca (or PECET_SERVER, PECET_CERT, PECET_KEY, PECET_CA);
--key names a key on the HSM. (chain verify and timestamp take the TLS client
certificate as --client-cert: there --cert is the certificate judged.)
The global flags --server, --cert, --key-file, --ca, --dev-dir, --as and
--timeout may also stand before the command (pecet --server HOST:PORT sign
…); there --cert is always the TLS client certificate, and the same flag
after the command wins.

Exit status: 0 success or VALID, 1 INVALID, 2 usage error,
3 INDETERMINATE, 4 service error (unavailable, denied, not found,
invalid argument), 5 INCOMPLETE (audit verify: the log's end is not
vouched for by a signed checkpoint).

Run 'pecet COMMAND --help' for a command's flags.
`

func usage() {
	fmt.Fprint(os.Stderr, usageHead)
	for _, c := range commands {
		if !strings.Contains(c.name, " ") {
			fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprint(os.Stderr, usageTail)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	os.Exit(run(os.Args[1:]))
}

// run runs pecet with its arguments: global flags, then the command.
func run(args []string) int {
	g, args, code := splitGlobals(args)
	if code >= 0 {
		return code
	}
	if len(args) == 0 {
		usage()
		return exitUsage
	}
	if name := args[0]; name == "-h" || name == "--help" || name == "help" {
		usage()
		return exitOK
	}
	globals = g
	return runCommand(args)
}
