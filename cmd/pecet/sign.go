package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

func parseHash(s string) (pecetv1.HashAlgorithm, bool) {
	switch strings.ToLower(strings.ReplaceAll(s, "-", "")) {
	case "sha256":
		return pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256, true
	case "sha384":
		return pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA384, true
	case "sha512":
		return pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512, true
	}
	return 0, false
}

func runSign(args []string) int {
	fs, c := newFlags("sign", "sign --key ALIAS (--in FILE | --digest HEX) [--out FILE] [--attached] [--pem] [--hash sha256|sha384|sha512] [--timestamp]\n       pecet sign --key ALIAS --digest-file FILE --out DIR [--batch-size N] [--raw] [--pem] [--hash …] [--timestamp]", "client")
	alias := fs.String("key", "", "`alias` of a SIGN key on the HSM (required)")
	version := versionVar(fs, "key `version` (default: the primary)")
	in := fs.String("in", "", "`file` to sign, - for stdin")
	digest := fs.String("digest", "", "sign this `hex` digest of the data instead of --in (the data stays here; always detached)")
	out := fs.String("out", "-", "signature output `file`, - for stdout (0644; 0600 with --attached: the content is inside)")
	attached := fs.Bool("attached", false, "embed the data in the signature (default detached)")
	asPEM := fs.Bool("pem", false, "write PEM (-----BEGIN CMS-----) instead of DER")
	hash := fs.String("hash", "sha256", "digest `algorithm`: sha256, sha384, sha512")
	stampIt := fs.Bool("timestamp", false, "add an RFC 3161 time-stamp from pecet's TSA over the signature (CAdES-T)")
	batch := addSignBatchFlags(fs) // cmd/pecet/batch.go
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *alias == "" {
		return usageErr(fs, "--key ALIAS is required (see pecet keys list)")
	}
	h, ok := parseHash(*hash)
	if !ok {
		return usageErr(fs, "--hash %q: use sha256, sha384 or sha512", *hash)
	}
	if *batch.file != "" {
		return runSignDigestFile(fs, c, batch, &pecetv1.SignDigestsRequest{Key: *alias, Version: uint32(*version), Hash: h, Timestamp: *stampIt},
			*asPEM, *out, *in != "" || *digest != "" || *attached)
	}
	if *batch.raw {
		return usageErr(fs, "--raw goes with --digest-file only")
	}
	if (*in == "") == (*digest == "") {
		return usageErr(fs, "give exactly one of --in FILE and --digest HEX")
	}
	req := &pecetv1.SignRequest{Key: *alias, Version: uint32(*version), Hash: h, Attached: *attached, Timestamp: *stampIt}
	if *in != "" {
		data, err := readInput(*in, int64(c.opts.MaxMessageBytesOrDefault()-64<<10))
		if tl := (*tooLargeError)(nil); errors.As(err, &tl) {
			return usageErr(fs, "%v: sign a digest instead (--digest)", err)
		}
		if err != nil {
			return usageErr(fs, "%v", err)
		}
		req.Input = &pecetv1.SignRequest_Data{Data: data}
	} else {
		d, err := hex.DecodeString(*digest)
		if err != nil {
			return usageErr(fs, "--digest is not hex: %v", err)
		}
		req.Input = &pecetv1.SignRequest_Digest{Digest: d}
	}
	return runCall(fs, &call{name: "sign", c: c}, func(x *call) (int, error) {
		if err := x.dial(); err != nil {
			return 0, err
		}
		resp, err := x.cc.Sign.Sign(x.ctx, req)
		if err != nil {
			return 0, err
		}
		if _, err := writeCMS(*out, resp.GetSignature(), *asPEM, *attached); err != nil {
			return 0, err
		}
		if c.json {
			out := map[string]any{"key": resp.GetKey(), "version": resp.GetVersion(), "signing_time": resp.GetSigningTime().AsTime(), "out": *out}
			if resp.GetTimestampTime() != nil {
				out["timestamp_time"] = resp.GetTimestampTime().AsTime()
			}
			printJSON(out)
		} else if *out != "-" {
			fmt.Fprintf(os.Stderr, "signed with %s version %d -> %s\n", resp.GetKey(), resp.GetVersion(), *out)
			if resp.GetTimestampTime() != nil {
				fmt.Fprintf(os.Stderr, "time-stamped at %s\n", resp.GetTimestampTime().AsTime().Format(time.RFC3339Nano))
			}
		}
		return exitOK, nil
	})
}
