package main

import (
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

var keysList = &leaf{synopsis: "[--json]", role: "officer",
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		return func(x *call) (int, error) {
			if err := x.dial(); err != nil {
				return 0, err
			}
			resp, err := x.cc.Keys.ListKeys(x.ctx, &pecetv1.ListKeysRequest{})
			if err != nil {
				return 0, err
			}
			if x.c.json {
				printProto(resp)
				return exitOK, nil
			}
			printKeys(resp.GetKeys())
			return exitOK, nil
		}
	}}

// printKeys is the table of `keys list`.
func printKeys(keys []*pecetv1.Key) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALIAS\tVERSION\tALGORITHM\tPURPOSE\tSTATE\tCERTIFICATE SUBJECT")
	for _, k := range keys {
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
}

var keysShow = &leaf{synopsis: "--alias ALIAS [--json]", role: "officer", required: []string{"alias"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		alias := fs.String("alias", "", "key `alias` (required)")
		return func(x *call) (int, error) {
			if err := x.dial(); err != nil {
				return 0, err
			}
			k, err := x.cc.Keys.GetKey(x.ctx, &pecetv1.GetKeyRequest{Alias: *alias})
			if err != nil {
				return 0, err
			}
			if x.c.json {
				printProto(k)
				return exitOK, nil
			}
			printKey(k)
			return exitOK, nil
		}
	}}
