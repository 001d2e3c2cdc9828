package main

import (
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
)

var purposes = map[string]pecetv1.KeyPurpose{"sign": pecetv1.KeyPurpose_SIGN, "decrypt": pecetv1.KeyPurpose_DECRYPT, "timestamp": pecetv1.KeyPurpose_TIMESTAMP}

var algorithms = map[string]pecetv1.KeyAlgorithm{
	"rsa2048": pecetv1.KeyAlgorithm_RSA_2048, "rsa3072": pecetv1.KeyAlgorithm_RSA_3072, "rsa4096": pecetv1.KeyAlgorithm_RSA_4096,
	"p256": pecetv1.KeyAlgorithm_EC_P256, "p384": pecetv1.KeyAlgorithm_EC_P384,
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func printProto(m proto.Message) { fmt.Println(protojson.Format(m)) }

// printChange reports a write call: what changed, or the pending request.
func printChange(ch *pecetv1.KeyChange) {
	if pr := ch.GetPendingRequest(); pr != nil {
		what := pr.GetOperation() + " " + pr.GetAlias()
		if pr.GetVersion() != 0 {
			what += fmt.Sprintf(" version %d", pr.GetVersion())
		}
		fmt.Printf("pending request %s: %s needs a second officer.\nAnother officer approves it with:  pecet keys approve %s\n(requested by %s, expires %s)\n",
			pr.GetId(), what, pr.GetId(), pr.GetRequestedBy(), pr.GetExpires().AsTime().Local().Format(time.RFC3339))
		return
	}
	k := ch.GetKey()
	for _, v := range k.GetVersions() {
		if v.GetVersion() == ch.GetVersion() {
			p := ""
			if v.GetPrimary() {
				p = ", primary"
			}
			fmt.Printf("%s version %d: %s%s\n", k.GetAlias(), v.GetVersion(), v.GetState(), p)
		}
	}
	if w := k.GetWarning(); w != "" {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
}

var keysCreate = &leaf{synopsis: "--alias ALIAS --purpose sign|decrypt|timestamp --algorithm rsa2048|rsa3072|rsa4096|p256|p384", role: "officer",
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		alias := fs.String("alias", "", "new key `alias` (required)")
		purpose := fs.String("purpose", "", "sign, decrypt or timestamp (required)")
		alg := fs.String("algorithm", "", "rsa2048, rsa3072, rsa4096, p256 or p384 (required; decrypt: RSA only)")
		return func(x *call) (int, error) {
			p, ok := purposes[*purpose]
			if !ok {
				return usagef("--purpose must be sign, decrypt or timestamp")
			}
			a, ok := algorithms[*alg]
			if !ok {
				return usagef("--algorithm must be rsa2048, rsa3072, rsa4096, p256 or p384")
			}
			if *alias == "" {
				return usagef("--alias is required")
			}
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.KeyChange, error) {
				return cc.Keys.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: *alias, Purpose: p, Algorithm: a})
			}, printChange)
		}
	}}

var keysRotate = &leaf{synopsis: "--alias ALIAS", role: "officer", required: []string{"alias"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		alias := fs.String("alias", "", "key `alias` (required)")
		return func(x *call) (int, error) {
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.KeyChange, error) {
				return cc.Keys.RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: *alias})
			}, printChange)
		}
	}}

var keysCSR = &leaf{synopsis: `--alias ALIAS [--version N] --subject "CN=…,O=…,C=CZ" [--san KIND:VALUE]... [--out FILE]`, role: "officer",
	required: []string{"alias", "subject"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		alias := fs.String("alias", "", "key `alias` (required)")
		version := versionVar(fs, "key `version` (default: the newest)")
		subject := fs.String("subject", "", "subject, RFC 4514: \"CN=Jana Nováková,O=Example s.r.o.,C=CZ\" (required)")
		var sans stringList
		fs.Var(&sans, "san", "subject alternative name `KIND:VALUE` (DNS:, email:, IP:, URI:); repeatable")
		out := fs.String("out", "", "write the PEM request to `FILE` (default stdout)")
		der := fs.Bool("der", false, "write DER instead of PEM")
		return func(x *call) (int, error) {
			if err := x.dial(); err != nil {
				return 0, err
			}
			resp, err := x.cc.Keys.CreateCSR(x.ctx, &pecetv1.CreateCSRRequest{Alias: *alias, Version: uint32(*version), Subject: *subject, SubjectAltNames: sans})
			if err != nil {
				return 0, err
			}
			b := resp.GetCsr()
			if !*der {
				b = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: b})
			}
			if err := writeOutput(*out, b); err != nil {
				return 0, err
			}
			if *out != "" {
				fmt.Fprintf(os.Stderr, "request for %s version %d written to %s\n", *alias, resp.GetVersion(), *out)
			}
			return exitOK, nil
		}
	}}

var keysImport = &leaf{synopsis: "--alias ALIAS [--version N] --in CHAIN.pem", role: "officer", required: []string{"alias", "in"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		alias := fs.String("alias", "", "key `alias` (required)")
		version := versionVar(fs, "key `version` (default: the newest)")
		in := fs.String("in", "", "PEM `file` with the certificate chain, leaf first (required; - for stdin)")
		return func(x *call) (int, error) {
			chain, err := readCertFile(*in, false)
			if err != nil {
				return usagef("%v", err)
			}
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.KeyChange, error) {
				return cc.Keys.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: *alias, Version: uint32(*version), Chain: chain})
			}, printChange)
		}
	}}

// keysVersionOp is set-primary, disable, enable or destroy.
func keysVersionOp(op string) *leaf {
	return &leaf{synopsis: "--alias ALIAS --version N", role: "officer", required: []string{"alias", "version"},
		define: func(fs *flag.FlagSet) func(x *call) (int, error) {
			alias := fs.String("alias", "", "key `alias` (required)")
			version := versionVar(fs, "key `version` (required)")
			return func(x *call) (int, error) {
				return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.KeyChange, error) {
					a, v := *alias, uint32(*version)
					switch op {
					case "set-primary":
						return cc.Keys.SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: a, Version: v})
					case "disable":
						return cc.Keys.DisableKeyVersion(ctx, &pecetv1.DisableKeyVersionRequest{Alias: a, Version: v})
					case "enable":
						return cc.Keys.EnableKeyVersion(ctx, &pecetv1.EnableKeyVersionRequest{Alias: a, Version: v})
					case "destroy":
						return cc.Keys.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: a, Version: v})
					}
					return nil, fmt.Errorf("unknown version operation %q", op)
				}, printChange)
			}
		}}
}

var keysRequests = &leaf{synopsis: "[--json]", role: "officer",
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		return func(x *call) (int, error) {
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.ListRequestsResponse, error) {
				return cc.Keys.ListRequests(ctx, &pecetv1.ListRequestsRequest{})
			}, func(r *pecetv1.ListRequestsResponse) { printRequests(r.GetRequests()) })
		}
	}}

// printRequests is the table of `keys requests`.
func printRequests(reqs []*pecetv1.PendingRequest) {
	if len(reqs) == 0 {
		fmt.Println("no pending requests")
		return
	}
	fmt.Printf("%-16s  %-11s  %-24s  %-7s  %-16s  %s\n", "ID", "OPERATION", "ALIAS", "VERSION", "REQUESTED BY", "EXPIRES")
	for _, r := range reqs {
		ver := "-"
		if r.GetVersion() != 0 {
			ver = fmt.Sprint(r.GetVersion())
		}
		fmt.Printf("%-16s  %-11s  %-24s  %-7s  %-16s  %s\n", r.GetId(), r.GetOperation(), r.GetAlias(), ver, r.GetRequestedBy(), r.GetExpires().AsTime().Local().Format(time.RFC3339))
	}
}

var keysApprove = &leaf{synopsis: "ID", role: "officer", arg: "ID", argMissing: "the request ID is required (see pecet keys requests)",
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		return func(x *call) (int, error) {
			return query(x, func(cc *client.Conn, ctx context.Context) (*pecetv1.KeyChange, error) {
				return cc.Keys.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: x.arg})
			}, printChange)
		}
	}}

// versionState is a version's state with what limits its use: refused
// (its certificate on the token does not match its key pair) or awaiting
// dual-control approval (never primary while set-primary needs two
// officers).
func versionState(v *pecetv1.KeyVersion) string {
	st := v.GetState().String()
	switch {
	case v.GetProblem() != "":
		st += " (REFUSED)"
	case v.GetAwaitingApproval():
		st += " (awaiting approval)"
	}
	return st
}

// printKey shows one key for `keys show`.
func printKey(k *pecetv1.Key) {
	fmt.Printf("alias:      %s\npurpose:    %s\nalgorithm:  %s\nprimary:    %d\n", k.GetAlias(), k.GetPurpose(), k.GetAlgorithm(), k.GetPrimaryVersion())
	if w := k.GetWarning(); w != "" {
		fmt.Printf("WARNING:    %s\n", w)
	}
	for _, v := range k.GetVersions() {
		prim := ""
		if v.GetPrimary() {
			prim = " (primary)"
		}
		fmt.Printf("\nversion %d%s\n  state:       %s\n", v.GetVersion(), prim, versionState(v))
		if p := v.GetProblem(); p != "" {
			fmt.Printf("  REFUSED:     %s\n", p)
		}
		if v.GetCreated() != nil {
			fmt.Printf("  created:     %s\n", v.GetCreated().AsTime().Format(time.RFC3339))
		}
		if v.GetPublicKeySha256() != "" {
			fmt.Printf("  public key:  sha256:%s\n", v.GetPublicKeySha256())
		}
		if v.GetCertificateSubject() != "" {
			fmt.Printf("  subject:     %s\n  certificate: sha256:%s\n  valid:       %s .. %s\n  chain:       %d certificate(s)\n",
				v.GetCertificateSubject(), v.GetCertificateSha256(),
				v.GetNotBefore().AsTime().Format(time.RFC3339), v.GetNotAfter().AsTime().Format(time.RFC3339), len(v.GetCertificateChain()))
		}
	}
}
