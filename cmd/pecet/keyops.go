package main

import (
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
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
func printChange(c *conn, _ string, ch *pecetv1.KeyChange) int {
	if c.json {
		printProto(ch)
		return exitOK
	}
	if pr := ch.GetPendingRequest(); pr != nil {
		what := pr.GetOperation() + " " + pr.GetAlias()
		if pr.GetVersion() != 0 {
			what += fmt.Sprintf(" version %d", pr.GetVersion())
		}
		fmt.Printf("pending request %s: %s needs a second officer.\nAnother officer approves it with:  pecet keys approve %s\n(requested by %s, expires %s)\n",
			pr.GetId(), what, pr.GetId(), pr.GetRequestedBy(), pr.GetExpires().AsTime().Local().Format(time.RFC3339))
		return exitOK
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
	return exitOK
}

func keysCreate(args []string) int {
	fs, c := newFlags("keys create", "keys create --alias ALIAS --purpose sign|decrypt|timestamp --algorithm rsa2048|rsa3072|rsa4096|p256|p384", "officer")
	alias := fs.String("alias", "", "new key `alias` (required)")
	purpose := fs.String("purpose", "", "sign, decrypt or timestamp (required)")
	alg := fs.String("algorithm", "", "rsa2048, rsa3072, rsa4096, p256 or p384 (required; decrypt: RSA only)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	p, ok := purposes[*purpose]
	if !ok {
		return usageErr(fs, "--purpose must be sign, decrypt or timestamp")
	}
	a, ok := algorithms[*alg]
	if !ok {
		return usageErr(fs, "--algorithm must be rsa2048, rsa3072, rsa4096, p256 or p384")
	}
	if *alias == "" {
		return usageErr(fs, "--alias is required")
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys create", err)
	}
	defer done()
	ch, err := cc.Keys.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: *alias, Purpose: p, Algorithm: a})
	if err != nil {
		return fail("keys create", err)
	}
	return printChange(c, "create", ch)
}

func keysRotate(args []string) int {
	fs, c := newFlags("keys rotate", "keys rotate --alias ALIAS", "officer")
	alias := fs.String("alias", "", "key `alias` (required)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *alias == "" {
		return usageErr(fs, "--alias is required")
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys rotate", err)
	}
	defer done()
	ch, err := cc.Keys.RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: *alias})
	if err != nil {
		return fail("keys rotate", err)
	}
	return printChange(c, "rotate", ch)
}

func keysCSR(args []string) int {
	fs, c := newFlags("keys csr", `keys csr --alias ALIAS [--version N] --subject "CN=…,O=…,C=CZ" [--san KIND:VALUE]... [--out FILE]`, "officer")
	alias := fs.String("alias", "", "key `alias` (required)")
	version := versionVar(fs, "key `version` (default: the newest)")
	subject := fs.String("subject", "", "subject, RFC 4514: \"CN=Jana Nováková,O=Example s.r.o.,C=CZ\" (required)")
	var sans stringList
	fs.Var(&sans, "san", "subject alternative name `KIND:VALUE` (DNS:, email:, IP:, URI:); repeatable")
	out := fs.String("out", "", "write the PEM request to `FILE` (default stdout)")
	der := fs.Bool("der", false, "write DER instead of PEM")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *alias == "" || *subject == "" {
		return usageErr(fs, "--alias and --subject are required")
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys csr", err)
	}
	defer done()
	resp, err := cc.Keys.CreateCSR(ctx, &pecetv1.CreateCSRRequest{Alias: *alias, Version: uint32(*version), Subject: *subject, SubjectAltNames: sans})
	if err != nil {
		return fail("keys csr", err)
	}
	b := resp.GetCsr()
	if !*der {
		b = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: b})
	}
	if err := writeOutput(*out, b); err != nil {
		return fail("keys csr", err)
	}
	if *out != "" {
		fmt.Fprintf(os.Stderr, "request for %s version %d written to %s\n", *alias, resp.GetVersion(), *out)
	}
	return exitOK
}

func keysImport(args []string) int {
	fs, c := newFlags("keys import-cert", "keys import-cert --alias ALIAS [--version N] --in CHAIN.pem", "officer")
	alias := fs.String("alias", "", "key `alias` (required)")
	version := versionVar(fs, "key `version` (default: the newest)")
	in := fs.String("in", "", "PEM `file` with the certificate chain, leaf first (required; - for stdin)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *alias == "" || *in == "" {
		return usageErr(fs, "--alias and --in are required")
	}
	b, err := readInput(*in, 1<<20)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	chain, err := parsePEMCerts(*in, b)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys import-cert", err)
	}
	defer done()
	ch, err := cc.Keys.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: *alias, Version: uint32(*version), Chain: chain})
	if err != nil {
		return fail("keys import-cert", err)
	}
	return printChange(c, "import-cert", ch)
}

// keysVersionOp runs set-primary, disable, enable or destroy.
func keysVersionOp(op string, args []string) int {
	fs, c := newFlags("keys "+op, "keys "+op+" --alias ALIAS --version N", "officer")
	alias := fs.String("alias", "", "key `alias` (required)")
	version := versionVar(fs, "key `version` (required)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *alias == "" || *version == 0 {
		return usageErr(fs, "--alias and --version are required")
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys "+op, err)
	}
	defer done()
	a, v := *alias, uint32(*version)
	var ch *pecetv1.KeyChange
	switch op {
	case "set-primary":
		ch, err = cc.Keys.SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: a, Version: v})
	case "disable":
		ch, err = cc.Keys.DisableKeyVersion(ctx, &pecetv1.DisableKeyVersionRequest{Alias: a, Version: v})
	case "enable":
		ch, err = cc.Keys.EnableKeyVersion(ctx, &pecetv1.EnableKeyVersionRequest{Alias: a, Version: v})
	case "destroy":
		ch, err = cc.Keys.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: a, Version: v})
	}
	if err != nil {
		return fail("keys "+op, err)
	}
	return printChange(c, op, ch)
}

func keysRequests(args []string) int {
	fs, c := newFlags("keys requests", "keys requests [--json]", "officer")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys requests", err)
	}
	defer done()
	resp, err := cc.Keys.ListRequests(ctx, &pecetv1.ListRequestsRequest{})
	if err != nil {
		return fail("keys requests", err)
	}
	if c.json {
		printProto(resp)
		return exitOK
	}
	if len(resp.GetRequests()) == 0 {
		fmt.Println("no pending requests")
		return exitOK
	}
	fmt.Printf("%-16s  %-11s  %-24s  %-7s  %-16s  %s\n", "ID", "OPERATION", "ALIAS", "VERSION", "REQUESTED BY", "EXPIRES")
	for _, r := range resp.GetRequests() {
		ver := "-"
		if r.GetVersion() != 0 {
			ver = fmt.Sprint(r.GetVersion())
		}
		fmt.Printf("%-16s  %-11s  %-24s  %-7s  %-16s  %s\n", r.GetId(), r.GetOperation(), r.GetAlias(), ver, r.GetRequestedBy(), r.GetExpires().AsTime().Local().Format(time.RFC3339))
	}
	return exitOK
}

func keysApprove(args []string) int {
	fs, c := newFlags("keys approve", "keys approve ID", "officer")
	// The id is positional; flags may come before or after it.
	var id string
	var rest []string
	for _, a := range args {
		if id == "" && !strings.HasPrefix(a, "-") && (len(rest) == 0 || !needsValue(fs, rest[len(rest)-1])) {
			id = a
			continue
		}
		rest = append(rest, a)
	}
	if code := parse(fs, rest); code >= 0 {
		return code
	}
	if id == "" {
		return usageErr(fs, "the request ID is required (see pecet keys requests)")
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("keys approve", err)
	}
	defer done()
	ch, err := cc.Keys.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: id})
	if err != nil {
		return fail("keys approve", err)
	}
	return printChange(c, "approve", ch)
}

// needsValue: whether a flag argument like "--as" takes the next argument.
func needsValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

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
