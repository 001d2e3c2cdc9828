package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/pki"
)

// maxPEMFile bounds a CRL file read by the CLI (certificate files:
// pki.MaxCertificateFile).
const maxPEMFile = 16 << 20

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// policyFlags are shared by verify and chain verify (README.md
// "Certificate policy").
type policyFlags struct {
	policy, anchors, revocation, at *string
	crls                            multiFlag
	// report: the file for the ETSI validation report (docs/api.md
	// "Validation reports"); empty: none asked for.
	report *string
}

func addPolicyFlags(fs *flag.FlagSet) *policyFlags {
	p := &policyFlags{
		policy:     fs.String("policy", "", "policy `NAME` to judge under (default: the server's default policy)"),
		anchors:    fs.String("anchors", "", "PEM `file` of extra trust anchors for this call only (the policy must allow the override \"anchors\")"),
		revocation: fs.String("revocation", "", "revocation `mode`: require, prefer or off (default: the policy's; a weaker one needs the policy's override \"revocation\"; off still uses the CRLs given)"),
		at:         fs.String("at", "", "judge as of this `time` (RFC 3339); default: a verified timestamp's time, else now"),
		report:     fs.String("report", "", "also write the ETSI TS 119 102-2 validation report (XML: indications, times, chain, policy, the objects used by digest; never the content) to this `file`"),
	}
	fs.Var(&p.crls, "crl", "CRL `file` (DER or PEM, v1 or v2) for this call, used in every revocation mode; repeatable")
	return p
}

type policyInputs struct {
	policy     string
	anchors    [][]byte
	crls       [][]byte
	revocation pecetv1.RevocationMode
	at         *timestamppb.Timestamp
	report     string // the --report file, "" for none
}

func (p *policyFlags) read() (policyInputs, error) {
	out := policyInputs{policy: *p.policy, report: *p.report}
	if out.report == "-" {
		return out, errors.New("--report needs a file: the verdict goes to stdout")
	}
	if *p.anchors != "" {
		certs, err := readCertFile(*p.anchors, false)
		if err != nil {
			return out, fmt.Errorf("--anchors: %w", err)
		}
		out.anchors = certs
	}
	for _, f := range p.crls {
		b, err := readInput(f, maxPEMFile)
		if err != nil {
			return out, fmt.Errorf("--crl: %w", err)
		}
		// Only the envelope is checked here; the server judges the CRL
		// (v1 or v2; one it cannot parse is a verdict, FORMAT_FAILURE).
		der, err := pki.DecodeOne(f, b, "X509 CRL")
		if err != nil {
			return out, fmt.Errorf("--crl %w", err)
		}
		out.crls = append(out.crls, der)
	}
	switch *p.revocation {
	case "":
	case "require":
		out.revocation = pecetv1.RevocationMode_REQUIRE
	case "prefer":
		out.revocation = pecetv1.RevocationMode_PREFER
	case "off":
		out.revocation = pecetv1.RevocationMode_OFF
	default:
		return out, fmt.Errorf("--revocation %q: use require, prefer or off", *p.revocation)
	}
	if *p.at != "" {
		t, err := time.Parse(time.RFC3339, *p.at)
		if err != nil {
			return out, fmt.Errorf("--at: %w", err)
		}
		out.at = timestamppb.New(t)
	}
	return out, nil
}

// readCertFile reads the certificates of a PEM or DER file (or stdin for
// "-") with the one reader of internal/pki. Certificates pecet relies on
// (anchors, recipients, a chain to import) are parsed here, so that garbage
// is a usage error with the file named; the ones `chain verify` sends to be
// judged (judged) are not: a certificate Go's parser refuses (a negative
// serial, PKITS 4.4.15) is the server's to judge, INVALID (FORMAT_FAILURE),
// and only a file that is no certificate envelope at all is a usage error.
func readCertFile(path string, judged bool) ([][]byte, error) {
	b, err := readInput(path, pki.MaxCertificateFile)
	if err != nil {
		return nil, err
	}
	if judged {
		return pki.CertificatesDER(path, b)
	}
	certs, err := pki.ParseCertificateFile(path, b)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out, nil
}

var chainVerify = &leaf{synopsis: "--cert leaf.pem [--chain intermediates.pem] [--anchors roots.pem] [--crl f.crl]... --purpose signing|encryption|timestamping|any [--revocation require|prefer|off] [--policy NAME] [--at RFC3339] [--report FILE] [--json]",
	role: "client", certFlag: "client-cert", required: []string{"cert"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		cert := fs.String("cert", "", "the certificate to judge, PEM or DER `file` (required); more certificates in it count as intermediates")
		chain := fs.String("chain", "", "PEM `file` of intermediate certificates")
		purpose := fs.String("purpose", "any", "`purpose`: signing, encryption, timestamping or any")
		pf := addPolicyFlags(fs)
		return func(x *call) (int, error) {
			certs, err := readCertFile(*cert, true)
			if err != nil {
				return usagef("--cert: %v", err)
			}
			if *chain != "" {
				more, err := readCertFile(*chain, true)
				if err != nil {
					return usagef("--chain: %v", err)
				}
				certs = append(certs, more...)
			}
			req := &pecetv1.ValidateCertificateRequest{Chain: certs}
			switch *purpose {
			case "signing":
				req.Purpose = pecetv1.Purpose_SIGNING
			case "encryption":
				req.Purpose = pecetv1.Purpose_ENCRYPTION
			case "timestamping":
				req.Purpose = pecetv1.Purpose_TIMESTAMPING
			case "any":
				req.Purpose = pecetv1.Purpose_ANY
			default:
				return usagef("--purpose %q: use signing, encryption, timestamping or any", *purpose)
			}
			resp, err := judge(x, pf, func(pi policyInputs) {
				req.Policy, req.Anchors, req.Crls, req.Revocation, req.At = pi.policy, pi.anchors, pi.crls, pi.revocation, pi.at
				req.Report = pi.report != ""
			}, func(cc *client.Conn, ctx context.Context) (*pecetv1.ValidateCertificateResponse, error) {
				return cc.Policy.ValidateCertificate(ctx, req)
			})
			if err != nil {
				return 0, err
			}
			return printVerdict(resp.GetVerdict(), x.c.json), nil
		}
	}}

// policyList and policyShow are `policy list` and `policy show NAME`.
var (
	policyList = &leaf{synopsis: "[--json]", role: "client", define: policyCmd("list")}
	policyShow = &leaf{synopsis: "NAME [--json]", role: "client", arg: "NAME", argMissing: "policy show needs a policy NAME", define: policyCmd("show")}
)

func policyCmd(sub string) func(fs *flag.FlagSet) func(x *call) (int, error) {
	return func(fs *flag.FlagSet) func(x *call) (int, error) {
		return func(x *call) (int, error) {
			if err := x.dial(); err != nil {
				return 0, err
			}
			resp, err := x.cc.Policy.ListPolicies(x.ctx, &pecetv1.ListPoliciesRequest{})
			if err != nil {
				return 0, err
			}
			var shown []*pecetv1.PolicyInfo
			for _, p := range resp.GetPolicies() {
				if x.arg == "" || p.GetName() == x.arg {
					shown = append(shown, p)
				}
			}
			if x.arg != "" && len(shown) == 0 {
				return 0, errors.New("no policy named " + x.arg + ": see `pecet policy list`")
			}
			if x.c.json {
				printJSON(policiesJSON(shown, sub == "show"))
				return exitOK, nil
			}
			printPolicies(shown, sub == "show")
			return exitOK, nil
		}
	}
}

// policiesJSON is the --json output of `policy list` and (full) `policy show`.
func policiesJSON(shown []*pecetv1.PolicyInfo, full bool) []map[string]any {
	var out []map[string]any
	for _, p := range shown {
		m := map[string]any{"name": p.GetName(), "description": p.GetDescription(), "default": p.GetDefault(), "revocation": p.GetRevocation(), "qualified": p.GetQualified()}
		if seq := p.GetTrustedListSequence(); seq != "" {
			m["trusted_list"] = map[string]any{"territory": p.GetTrustedListTerritory(), "sequence": seq,
				"issued": p.GetTrustedListIssued().AsTime().UTC().Format(time.RFC3339), "next_update": p.GetTrustedListNextUpdate().AsTime().UTC().Format(time.RFC3339)}
		}
		var anchors []map[string]string
		for _, a := range p.GetAnchors() {
			anchors = append(anchors, map[string]string{"subject": a.GetSubject(), "source": a.GetSource()})
		}
		if full {
			m["algorithms"] = p.GetAlgorithms()
			m["allow_overrides"] = append([]string{}, p.GetAllowedOverrides()...)
			m["anchors"] = anchors
		} else {
			m["anchor_count"] = len(anchors)
		}
		out = append(out, m)
	}
	return out
}

// printPolicies is the text output of `policy list` and (full) `policy show`.
func printPolicies(shown []*pecetv1.PolicyInfo, full bool) {
	for _, p := range shown {
		def := ""
		if p.GetDefault() {
			def = " (default)"
		}
		fmt.Printf("%s%s: %s; revocation %s; %d anchors\n", p.GetName(), def, p.GetDescription(), p.GetRevocation(), len(p.GetAnchors()))
		if !full {
			continue
		}
		fmt.Printf("  algorithms: %s\n", p.GetAlgorithms())
		allowed := strings.Join(p.GetAllowedOverrides(), ", ")
		if allowed == "" {
			allowed = "none"
		}
		fmt.Printf("  per-call overrides allowed: %s\n", allowed)
		if seq := p.GetTrustedListSequence(); seq != "" {
			fmt.Printf("  trusted list: %s, sequence %s, issued %s, next update %s\n", p.GetTrustedListTerritory(), seq,
				p.GetTrustedListIssued().AsTime().UTC().Format(time.RFC3339), p.GetTrustedListNextUpdate().AsTime().UTC().Format(time.RFC3339))
		}
		for _, a := range p.GetAnchors() {
			fmt.Printf("  anchor: %s  [%s]\n", a.GetSubject(), a.GetSource())
		}
	}
}

// judge reads the policy flags into a judging request (set), dials, makes
// the call and writes the validation report (--report) whatever the
// verdict.
func judge[R interface{ GetReport() []byte }](x *call, pf *policyFlags, set func(policyInputs), do func(cc *client.Conn, ctx context.Context) (R, error)) (R, error) {
	var zero R
	pi, err := pf.read()
	if err != nil {
		return zero, &usageError{msg: err.Error()}
	}
	set(pi)
	if err := x.dial(); err != nil {
		return zero, err
	}
	resp, err := do(x.cc, x.ctx)
	if err != nil {
		return zero, err
	}
	return resp, writeReport(pi.report, resp.GetReport())
}

// writeReport writes the validation report to the --report file, whatever
// the verdict; nothing when none was asked for.
func writeReport(path string, report []byte) error {
	if path == "" {
		return nil
	}
	if len(report) == 0 {
		return errors.New("--report: the server returned no validation report (is it older than this pecet?)")
	}
	return writeOutput(path, report)
}
