package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/pki"
)

// runAugment raises a CAdES signature to baseline T, LT or LTA with
// pecetd's TSA (docs/archive.md "CAdES augmentation").
func runAugment(args []string) int {
	fs, c := newFlags("augment", "augment --level t|lt|lta --in SIG [--content FILE | --digest HEX] [--policy NAME] [--crl FILE]... --out FILE [--pem]", "client")
	in := fs.String("in", "", "CMS signature `file` (DER or PEM), - for stdin (required)")
	level := fs.String("level", "", "`level` to reach: t (signature time-stamp), lt (also the certificates and CRLs a VALID validation used), lta (also an archive time-stamp; on an LTA signature another one: renewal) (required)")
	content := fs.String("content", "", "the signed content `file` of a detached signature (the signature is verified over it before any time-stamp, LTA's archive time-stamp covers it)")
	digest := fs.String("digest", "", "`hex` SHA-256 digest of the signed content, instead of --content")
	policyName := fs.String("policy", "", "policy `NAME` the signature must be VALID under before any time-stamp; for LT and LTA with revocation required (default: the server's default policy)")
	var crls multiFlag
	fs.Var(&crls, "crl", "CRL `file` (DER or PEM) for judging the signature (the policy must allow the override \"crls\"); the ones used are embedded; repeatable")
	out := fs.String("out", "", "augmented signature `file`, - for stdout (required; 0600 when it embeds its content, else 0644)")
	asPEM := fs.Bool("pem", false, "write PEM (-----BEGIN CMS-----) instead of DER")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *in == "" || *out == "" {
		return usageErr(fs, "--in SIG and --out FILE are required")
	}
	lv, ok := map[string]pecetv1.CadesLevel{"t": pecetv1.CadesLevel_CADES_LEVEL_T, "lt": pecetv1.CadesLevel_CADES_LEVEL_LT, "lta": pecetv1.CadesLevel_CADES_LEVEL_LTA}[strings.ToLower(*level)]
	if !ok {
		return usageErr(fs, "--level %q: use t, lt or lta", *level)
	}
	if *content != "" && *digest != "" {
		return usageErr(fs, "give at most one of --content and --digest")
	}
	limit := int64(c.opts.MaxMessageBytesOrDefault() - 64<<10)
	sig, err := readInput(*in, limit)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	req := &pecetv1.AugmentRequest{Signature: decodeSignature(sig), Level: lv, Policy: *policyName}
	if *content != "" {
		data, err := readInput(*content, limit-int64(len(sig)))
		if err != nil {
			return usageErr(fs, "%v", err)
		}
		req.Detached = &pecetv1.AugmentRequest_Content{Content: data}
	}
	if *digest != "" {
		d, err := hex.DecodeString(*digest)
		if err != nil || len(d) != 32 {
			return usageErr(fs, "--digest must be a hex SHA-256 digest (64 hex digits)")
		}
		req.Detached = &pecetv1.AugmentRequest_ContentDigest{ContentDigest: d}
	}
	for _, f := range crls {
		b, err := readInput(f, maxPEMFile)
		if err != nil {
			return usageErr(fs, "--crl: %v", err)
		}
		der, err := pki.DecodeOne(f, b, "X509 CRL")
		if err != nil {
			return usageErr(fs, "--crl %v", err)
		}
		req.Crls = append(req.Crls, der)
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("augment", err)
	}
	defer done()
	resp, err := cc.Sign.Augment(ctx, req)
	if err != nil {
		return fail("augment", err)
	}
	// An attached signature keeps its content through augmentation: the
	// file is then private (docs/security.md, "Files the CLI writes").
	augmented := resp.GetSignature()
	if _, err := writeCMS(*out, augmented, *asPEM, signatureCarriesContent(augmented)); err != nil {
		return fail("augment", err)
	}
	if c.json {
		j := map[string]any{"level": resp.GetLevel(), "added": resp.GetAdded()}
		if v := resp.GetVerdict(); v != nil {
			j["verdict"] = v.GetStatus().String()
		}
		printJSON(j)
		return exitOK
	}
	// The summary goes to stderr when the signature goes to stdout.
	dst := os.Stdout
	if *out == "-" {
		dst = os.Stderr
	}
	w := func(f string, a ...any) { fmt.Fprintf(dst, f, a...) }
	w("level:         %s\n", resp.GetLevel())
	if len(resp.GetAdded()) == 0 {
		w("added:         nothing (the signature already had the level)\n")
	} else {
		w("added:         %s\n", strings.Join(resp.GetAdded(), ", "))
	}
	if v := resp.GetVerdict(); v != nil {
		w("verdict used:  %s (policy %s, validated at %s)\n", v.GetStatus(), v.GetPolicy(), v.GetValidatedAt().AsTime().Format("2006-01-02T15:04:05Z07:00"))
	}
	return exitOK
}
