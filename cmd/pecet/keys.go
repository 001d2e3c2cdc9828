package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
)

var keysList = &leaf{synopsis: "[--json]", role: "officer",
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		return func(x *call) (int, error) {
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.ListKeysResponse, error) {
				return cc.Keys.ListKeys(ctx, &pecetv1.ListKeysRequest{})
			}, func(r *pecetv1.ListKeysResponse) { printKeys(r.GetKeys()) })
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
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.Key, error) {
				return cc.Keys.GetKey(ctx, &pecetv1.GetKeyRequest{Alias: *alias})
			}, printKey)
		}
	}}
