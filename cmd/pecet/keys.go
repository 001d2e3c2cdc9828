package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

const keysUsage = `Usage:
  pecet keys list [--json]
  pecet keys show --alias ALIAS [--json]
  pecet keys create --alias ALIAS --purpose sign|decrypt|timestamp --algorithm rsa2048|rsa3072|rsa4096|p256|p384
  pecet keys rotate --alias ALIAS
  pecet keys csr --alias ALIAS [--version N] --subject "CN=…,O=…,C=CZ" [--san DNS:…|email:…|IP:…|URI:…]... [--out FILE]
  pecet keys import-cert --alias ALIAS [--version N] --in CHAIN.pem
  pecet keys set-primary --alias ALIAS --version N
  pecet keys disable --alias ALIAS --version N
  pecet keys enable --alias ALIAS --version N
  pecet keys destroy --alias ALIAS --version N
  pecet keys requests
  pecet keys approve ID

All but list and show are for officers (the default --as officer). Where
config asks for dual control, create, rotate, set-primary and destroy only
make a request and print its id; another officer runs 'pecet keys approve ID'.

Run 'pecet keys SUBCOMMAND --help' for flags.
`

func runKeys(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, keysUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "list":
		return keysList(args[1:])
	case "show":
		return keysShow(args[1:])
	case "create":
		return keysCreate(args[1:])
	case "rotate":
		return keysRotate(args[1:])
	case "csr":
		return keysCSR(args[1:])
	case "import-cert":
		return keysImport(args[1:])
	case "set-primary", "disable", "enable", "destroy":
		return keysVersionOp(args[0], args[1:])
	case "requests":
		return keysRequests(args[1:])
	case "approve":
		return keysApprove(args[1:])
	}
	fmt.Fprintf(os.Stderr, "pecet keys: unknown subcommand %q\n%s", args[0], keysUsage)
	return exitUsage
}

func keysList(args []string) int {
	fs, c := newFlags("keys list", "keys list [--json]", "officer")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys list", err)
	}
	defer done()
	resp, err := cc.Keys.ListKeys(ctx, &pecetv1.ListKeysRequest{})
	if err != nil {
		return fail("keys list", err)
	}
	if c.json {
		fmt.Println(protojson.Format(resp))
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALIAS\tVERSION\tALGORITHM\tPURPOSE\tSTATE\tCERTIFICATE SUBJECT")
	for _, k := range resp.GetKeys() {
		if p := k.GetProblem(); p != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tUNREADABLE\t%s\n", k.GetAlias(), p)
		}
		for _, v := range k.GetVersions() {
			ver := fmt.Sprint(v.GetVersion())
			if v.GetPrimary() {
				ver += "*"
			}
			subj := v.GetCertificateSubject()
			if subj == "" {
				subj = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.GetAlias(), ver, k.GetAlgorithm(), k.GetPurpose(), versionState(v), subj)
		}
	}
	tw.Flush()
	fmt.Println("(* primary version)")
	return exitOK
}

func keysShow(args []string) int {
	fs, c := newFlags("keys show", "keys show --alias ALIAS [--json]", "officer")
	alias := fs.String("alias", "", "key `alias` (required)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *alias == "" {
		return usageErr(fs, "--alias is required")
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys show", err)
	}
	defer done()
	k, err := cc.Keys.GetKey(ctx, &pecetv1.GetKeyRequest{Alias: *alias})
	if err != nil {
		return fail("keys show", err)
	}
	if c.json {
		fmt.Println(protojson.Format(k))
		return exitOK
	}
	printKey(k)
	return exitOK
}
