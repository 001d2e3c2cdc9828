package main

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/pki"
)

// decodeSignature accepts DER or PEM ("CMS" or "PKCS7" blocks); anything
// else goes to the server as it is, which judges it.
func decodeSignature(b []byte) []byte {
	if blocks := pki.Blocks(b); pki.IsPEM(b) && len(blocks) > 0 {
		return blocks[0]
	}
	return b
}

var verifyCmd = &leaf{synopsis: "--in SIG [--content FILE | --digest HEX [--hash ALG]] [--out FILE] [--policy NAME] [--anchors FILE] [--crl FILE]... [--revocation MODE] [--at RFC3339] [--report FILE] [--json]",
	role: "client", required: []string{"in"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		in := fs.String("in", "", "CMS signature `file` (DER or PEM), - for stdin (required)")
		content := fs.String("content", "", "the signed content `file`: required for a detached signature; for an attached one it must be the embedded content, else INVALID (CONTENT_MISMATCH)")
		digest := fs.String("digest", "", "`hex` digest of the signed content, instead of --content")
		out := fs.String("out", "", "write the embedded content of an attached signature, the bytes it covers, to this `file` (only when VALID; created 0600, replaced by a rename)")
		hash := fs.String("hash", "sha256", "`algorithm` of --digest: sha256, sha384, sha512")
		pf := addPolicyFlags(fs)
		return func(x *call) (int, error) {
			if *content != "" && *digest != "" {
				return usagef("give at most one of --content and --digest")
			}
			if *out == "-" {
				return usagef("--out needs a file: the verdict goes to stdout")
			}
			limit := int64(x.c.opts.MaxMessageBytesOrDefault() - 64<<10)
			sig, err := readInput(*in, limit)
			if err != nil {
				return usagef("%v", err)
			}
			req := &pecetv1.VerifyRequest{Signature: decodeSignature(sig)}
			if *content != "" {
				data, err := readInput(*content, limit-int64(len(sig)))
				if err != nil {
					return usagef("%v", err)
				}
				req.Detached = &pecetv1.VerifyRequest_Content{Content: data}
			}
			if *digest != "" {
				d, err := hex.DecodeString(*digest)
				if err != nil {
					return usagef("--digest is not hex: %v", err)
				}
				h, ok := parseHash(*hash)
				if !ok {
					return usagef("--hash %q: use sha256, sha384 or sha512", *hash)
				}
				req.Detached = &pecetv1.VerifyRequest_ContentDigest{ContentDigest: d}
				req.DigestHash = h
			}
			resp, err := judge(x, pf, func(pi policyInputs) {
				req.Policy, req.Anchors, req.Crls, req.Revocation, req.At = pi.policy, pi.anchors, pi.crls, pi.revocation, pi.at
				req.Report = pi.report != ""
			}, func(cc *client.Conn, ctx context.Context) (*pecetv1.VerifyResponse, error) {
				return cc.Sign.Verify(ctx, req)
			})
			if err != nil {
				return 0, err
			}
			if *out != "" {
				// As openssl cms -verify: the content only of a VALID signature.
				switch {
				case resp.GetContentSource() != pecetv1.VerifyResponse_EMBEDDED:
					fmt.Fprintf(os.Stderr, "pecet verify: --out: nothing written, the signature is detached\n")
				case resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID:
					fmt.Fprintf(os.Stderr, "pecet verify: --out: nothing written, the signature is not VALID\n")
				default:
					if err := writePrivateOutput(*out, resp.GetContent()); err != nil {
						return 0, err
					}
				}
			}
			return printVerdictFor(resp.GetVerdict(), x.c.json, verifiedContent(resp), levelField(resp)), nil
		}
	}}

// levelField names the CAdES baseline level reached and the proof of
// existence the chain rests on (docs/archive.md "CAdES augmentation").
func levelField(r *pecetv1.VerifyResponse) extraField {
	if r.GetSignatureLevel() == "" {
		return extraField{}
	}
	text := r.GetSignatureLevel()
	j := map[string]any{"level": r.GetSignatureLevel()}
	if t := r.GetPoeTime(); t != nil {
		text += ", proof of existence " + t.AsTime().Format(time.RFC3339)
		j["poe_time"] = t.AsTime()
	}
	if t := r.GetArchiveTime(); t != nil {
		text += ", archive time-stamp " + t.AsTime().Format(time.RFC3339)
		j["archive_time"] = t.AsTime()
	}
	return extraField{label: "level", text: text, json: j}
}

// verifiedContent says which content a signature's verdict is about, as a
// line for people and a value for --json; never the content itself, which
// may be personal data.
func verifiedContent(r *pecetv1.VerifyResponse) extraField {
	var text string
	switch r.GetContentSource() {
	case pecetv1.VerifyResponse_EMBEDDED:
		text = fmt.Sprintf("embedded, %d bytes", len(r.GetContent()))
	case pecetv1.VerifyResponse_GIVEN_CONTENT:
		text = "the content given"
	case pecetv1.VerifyResponse_GIVEN_DIGEST:
		text = "the digest given"
	default:
		return extraField{}
	}
	if len(r.GetContentDigest()) > 0 {
		text += fmt.Sprintf(", %s %x", r.GetContentDigestAlgorithm(), r.GetContentDigest())
	}
	switch r.GetCompared() {
	case pecetv1.VerifyResponse_GIVEN_CONTENT:
		text += "; compared with the content given"
	case pecetv1.VerifyResponse_GIVEN_DIGEST:
		text += "; compared with the digest given"
	}
	j := map[string]any{"source": r.GetContentSource().String(), "digest_algorithm": r.GetContentDigestAlgorithm(),
		"digest": hex.EncodeToString(r.GetContentDigest())}
	if r.GetContentSource() == pecetv1.VerifyResponse_EMBEDDED {
		j["bytes"] = len(r.GetContent())
	}
	if r.GetCompared() != pecetv1.VerifyResponse_CONTENT_SOURCE_UNSPECIFIED {
		j["compared"] = r.GetCompared().String()
	}
	return extraField{label: "content", text: text, json: j}
}

// extraField is one more line of a verdict (and key of its JSON).
type extraField struct {
	label, text string
	json        any
}

// printVerdict prints a verdict and returns its exit code.
func printVerdict(v *pecetv1.Verdict, asJSON bool) int {
	return printVerdictFor(v, asJSON, extraField{})
}

// printVerdictFor prints a verdict with an extra field (none when its label
// is empty) and returns the verdict's exit code.
func printVerdictFor(v *pecetv1.Verdict, asJSON bool, extras ...extraField) int {
	if asJSON {
		out := map[string]any{"status": v.GetStatus().String(), "subject": v.GetSubject()}
		if v.GetSigningTime() != nil {
			out["signing_time"] = v.GetSigningTime().AsTime()
		}
		if v.GetTimestampTime() != nil {
			out["timestamp_time"] = v.GetTimestampTime().AsTime()
		}
		if v.GetValidatedAt() != nil {
			out["validated_at"] = v.GetValidatedAt().AsTime()
		}
		if v.GetPolicy() != "" {
			out["policy"] = v.GetPolicy()
		}
		if v.GetQualification() != "" {
			out["qualification"] = v.GetQualification()
		}
		chain := []string{}
		for _, der := range v.GetChain() {
			if c, err := x509.ParseCertificate(der); err == nil {
				chain = append(chain, c.Subject.String())
			}
		}
		out["chain"] = chain
		reasons := []map[string]string{}
		for _, r := range v.GetReasons() {
			reasons = append(reasons, map[string]string{"code": r.GetCode(), "message": r.GetMessage()})
		}
		out["reasons"] = reasons
		for _, extra := range extras {
			if extra.label != "" {
				out[extra.label] = extra.json
			}
		}
		if len(v.GetOverrides()) > 0 {
			out["overrides"] = v.GetOverrides()
		}
		printJSON(out)
	} else {
		fmt.Println(v.GetStatus().String())
		if v.GetSubject() != "" {
			fmt.Printf("signer:        %s\n", v.GetSubject())
		}
		if v.GetSigningTime() != nil {
			fmt.Printf("signing time:  %s\n", v.GetSigningTime().AsTime().Format(time.RFC3339))
		}
		if v.GetTimestampTime() != nil {
			fmt.Printf("timestamp:     %s\n", v.GetTimestampTime().AsTime().Format(time.RFC3339))
		}
		if v.GetValidatedAt() != nil {
			fmt.Printf("validated at:  %s\n", v.GetValidatedAt().AsTime().Format(time.RFC3339))
		}
		if v.GetPolicy() != "" {
			fmt.Printf("policy:        %s\n", v.GetPolicy())
		}
		if v.GetQualification() != "" {
			fmt.Printf("qualification: %s\n", v.GetQualification())
		}
		for _, extra := range extras {
			if extra.label != "" {
				fmt.Printf("%-15s%s\n", extra.label+":", extra.text)
			}
		}
		for i, der := range v.GetChain() {
			if c, err := x509.ParseCertificate(der); err == nil {
				fmt.Printf("chain[%d]:      %s\n", i, c.Subject.String())
			}
		}
		for _, o := range v.GetOverrides() {
			fmt.Printf("override:      %s\n", o)
		}
		for _, r := range v.GetReasons() {
			fmt.Printf("reason:        %s: %s\n", r.GetCode(), r.GetMessage())
		}
	}
	switch v.GetStatus() {
	case pecetv1.Verdict_VALID:
		return exitOK
	case pecetv1.Verdict_INVALID:
		return exitInvalid
	default:
		return exitIndeterminate
	}
}
