package main

import (
	"crypto"
	"crypto/rand"
	_ "crypto/sha256" // registers the hashes digestOfFile uses
	_ "crypto/sha512"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/tsa"
)

func hashOf(s string) (crypto.Hash, pecetv1.HashAlgorithm, bool) {
	h, ok := parseHash(s)
	switch h {
	case pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA384:
		return crypto.SHA384, h, ok
	case pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512:
		return crypto.SHA512, h, ok
	}
	return crypto.SHA256, h, ok
}

// digestOfFile hashes a file (or stdin for "-") as it reads it: only the
// digest goes to the TSA, so the file is never held in memory whole.
func digestOfFile(h crypto.Hash, path string) ([]byte, error) {
	r := io.Reader(os.Stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	d := h.New()
	if _, err := io.Copy(d, r); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return d.Sum(nil), nil
}

func runTimestamp(args []string) int {
	fs, c := newFlagsCert("timestamp", "timestamp (--in FILE | --digest HEX) [--out FILE.tsr] [--hash sha256|sha384|sha512] [--nonce] [--cert] [--policy OID]\n       pecet timestamp --batch FILE --out DIR [--batch-size N] [--hash …] [--nonce] [--cert] [--policy OID]\n       pecet timestamp verify --help", "client", "client-cert")
	in := fs.String("in", "", "`file` to time-stamp (only its digest is sent), - for stdin")
	digest := fs.String("digest", "", "time-stamp this `hex` digest instead of --in")
	out := fs.String("out", "-", "TimeStampResp (DER, .tsr) output `file`, - for stdout")
	hash := fs.String("hash", "sha256", "digest `algorithm`: sha256, sha384, sha512")
	nonce := fs.Bool("nonce", false, "send a random 64-bit nonce and check the token echoes it")
	certReq := fs.Bool("cert", false, "ask for the TSA certificate in the token (as openssl ts -query -cert); the TLS client certificate flag is --client-cert here")
	pol := fs.String("policy", "", "TSA policy `OID` to ask for (default: the TSA's)")
	batch := fs.String("batch", "", "time-stamp each hex digest of this `file` (one per line, as sha256sum writes them; - for stdin) into --out DIR as LINE.tsr, --batch-size per call")
	batchSize := batchSizeFlag(fs)
	if code := parse(fs, args); code >= 0 {
		return code
	}
	h, ph, ok := hashOf(*hash)
	if !ok {
		return usageErr(fs, "--hash %q: use sha256, sha384 or sha512", *hash)
	}
	if *batch != "" { // cmd/pecet/batch.go
		return runTimestampBatch(fs, c, *batch, *batchSize, &pecetv1.TimestampRequest{Hash: ph, CertReq: *certReq, Policy: *pol}, *nonce, *out, *in != "" || *digest != "")
	}
	if (*in == "") == (*digest == "") {
		return usageErr(fs, "give exactly one of --in FILE and --digest HEX")
	}
	req := &pecetv1.TimestampRequest{Hash: ph, CertReq: *certReq, Policy: *pol}
	if *in != "" {
		d, err := digestOfFile(h, *in)
		if err != nil {
			return usageErr(fs, "%v", err)
		}
		req.Digest = d
	} else {
		d, err := hex.DecodeString(*digest)
		if err != nil {
			return usageErr(fs, "--digest is not hex: %v", err)
		}
		if len(d) != h.Size() {
			return usageErr(fs, "--digest has %d bytes, %v needs %d", len(d), h, h.Size())
		}
		req.Digest = d
	}
	var sent *big.Int
	if *nonce {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return fail("timestamp", err)
		}
		sent = new(big.Int).SetBytes(b)
		req.Nonce = sent.Bytes()
	}
	return runCall(fs, &call{name: "timestamp", c: c}, func(x *call) (int, error) {
		if err := x.dial(); err != nil {
			return 0, err
		}
		resp, err := x.cc.Timestamp.Timestamp(x.ctx, req)
		if err != nil {
			return 0, err
		}
		if resp.GetStatus() != pecetv1.TimestampResponse_GRANTED {
			return 0, fmt.Errorf("rejected (%s): %s", resp.GetFailureInfo(), resp.GetStatusText())
		}
		if sent != nil {
			info, err := tokenInfo(resp.GetToken())
			if err != nil || info.Nonce == nil || info.Nonce.Cmp(sent) != 0 {
				return 0, errors.New("the token does not echo the nonce sent")
			}
		}
		if err := writeOutput(*out, resp.GetResponse()); err != nil {
			return 0, err
		}
		serial := hex.EncodeToString(resp.GetSerialNumber())
		if c.json {
			printJSON(map[string]any{"gen_time": resp.GetGenTime().AsTime(), "serial": serial, "policy": resp.GetPolicy(), "out": *out})
		} else if *out != "-" {
			fmt.Fprintf(os.Stderr, "time-stamped at %s, serial %s, policy %s -> %s\n",
				resp.GetGenTime().AsTime().Format(time.RFC3339Nano), serial, resp.GetPolicy(), *out)
		}
		return exitOK, nil
	})
}

// tokenInfo reads the TSTInfo of a token without verifying it.
func tokenInfo(token []byte) (*tsa.TSTInfo, error) { return tsa.ParseToken(token) }

func timestampProto(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func runTimestampVerify(args []string) int {
	fs := flag.NewFlagSet("pecet timestamp verify", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pecet timestamp verify --in FILE.tsr [--data FILE | --digest HEX [--hash ALG]] [--anchors ca.pem] [--tsa-cert tsa.pem] [--nonce HEX] [--at RFC3339] [--json]\n\n"+
			"Verifies locally, without pecetd: the token's signature, the TSA certificate's\n"+
			"timeStamping EKU and its chain under the anchors with pecet's policy engine, at\n"+
			"the validation time (now, or --at; never the token's own genTime), that genTime\n"+
			"lies in the TSA certificate's validity, the imprint, the nonce when given, and\n"+
			"the ESS signing-certificate attribute. Without --data and --digest the token\n"+
			"alone is checked and the imprint it covers is printed. --in may be a\n"+
			"TimeStampResp (.tsr) or a bare token.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	in := fs.String("in", "", "TimeStampResp or TimeStampToken `file` (DER), - for stdin (required)")
	data := fs.String("data", "", "the time-stamped data `file`")
	digest := fs.String("digest", "", "`hex` digest of the data, instead of --data")
	hash := fs.String("hash", "sha256", "`algorithm` of --digest: sha256, sha384, sha512")
	anchors := fs.String("anchors", "", "PEM trust anchors `file` (default: the dev folder's ca.pem)")
	tsaCert := fs.String("tsa-cert", "", "PEM TSA certificate `file`, for tokens without certificates (default: the dev folder's tsa.pem)")
	nonceHex := fs.String("nonce", "", "`hex` nonce the request sent; the token must carry it")
	at := fs.String("at", "", "validation `time` (RFC 3339) to judge the TSA certificate at, instead of now (e.g. a time an archive time-stamp proves)")
	devDir := fs.String("dev-dir", "", "dev folder `DIR` (PECET_DEV_DIR; default ./.pecet-dev when present)")
	asJSON := fs.Bool("json", false, "machine-readable JSON output")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *in == "" {
		return usageErr(fs, "--in FILE.tsr is required")
	}
	if *data != "" && *digest != "" {
		return usageErr(fs, "give at most one of --data FILE and --digest HEX")
	}
	raw, err := readInput(*in, 1<<20)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	token := raw
	if tsa.IsResponse(raw) {
		r, err := tsa.ParseResponse(raw)
		if err != nil {
			return usageErr(fs, "%v", err)
		}
		if r.Token == nil {
			fmt.Printf("REJECTED\nstatus:        %s (%s) %v\n", r.Status, r.Fail, r.StatusText)
			return exitInvalid
		}
		token = r.Token
	}
	dev := *devDir
	if dev == "" {
		dev = os.Getenv("PECET_DEV_DIR")
	}
	if dev == "" {
		if st, err := os.Stat(client.DefaultDevDir); err == nil && st.IsDir() {
			dev = client.DefaultDevDir
		}
	}
	if *anchors == "" && dev != "" {
		*anchors = filepath.Join(dev, "ca.pem")
	}
	if *tsaCert == "" && dev != "" {
		if _, err := os.Stat(filepath.Join(dev, "tsa.pem")); err == nil {
			*tsaCert = filepath.Join(dev, "tsa.pem")
		}
	}
	opts := tsa.VerifyOptions{}
	if *anchors != "" {
		certs, err := pki.ReadCertificates(*anchors)
		if err != nil {
			return usageErr(fs, "--anchors: %v", err)
		}
		// The policy engine, as pecetd judges tokens; never crypto/x509's
		// verifier, whose EKU nesting refuses TSAs OpenSSL accepts
		// (docs/security.md "Time-stamps").
		e, err := policy.NewEngine("anchors", &policy.Policy{Name: "anchors", Description: "the --anchors file", Anchors: certs, Revocation: policy.RevocationOff})
		if err != nil {
			return usageErr(fs, "--anchors: %v", err)
		}
		opts.Validator = e
	}
	if *tsaCert != "" {
		if opts.TSACertificates, err = pki.ReadCertificates(*tsaCert); err != nil {
			return usageErr(fs, "--tsa-cert: %v", err)
		}
	}
	switch {
	case *data != "":
		if opts.Data, err = readInput(*data, 1<<40); err != nil {
			return usageErr(fs, "%v", err)
		}
	case *digest == "":
		opts.NoImprint = true // the token alone; its imprint is printed
	default:
		if opts.Digest, err = hex.DecodeString(*digest); err != nil {
			return usageErr(fs, "--digest is not hex: %v", err)
		}
		h, _, ok := hashOf(*hash)
		if !ok {
			return usageErr(fs, "--hash %q: use sha256, sha384 or sha512", *hash)
		}
		opts.DigestHash = h
	}
	if *nonceHex != "" {
		n, ok := new(big.Int).SetString(*nonceHex, 16)
		if !ok {
			return usageErr(fs, "--nonce is not hex")
		}
		opts.Nonce = n
	}
	if *at != "" {
		if opts.At, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageErr(fs, "--at: %v", err)
		}
	}
	info, v, err := tsa.Verify(token, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pecet timestamp verify: %v\n", err)
		return exitInvalid
	}
	pv := &pecetv1.Verdict{Status: map[policy.Status]pecetv1.Verdict_Status{
		policy.Valid: pecetv1.Verdict_VALID, policy.Invalid: pecetv1.Verdict_INVALID, policy.Indeterminate: pecetv1.Verdict_INDETERMINATE,
	}[v.Status], Subject: v.Subject}
	pv.TimestampTime = timestampProto(info.GenTime)
	if !v.ValidatedAt.IsZero() {
		pv.ValidatedAt = timestampProto(v.ValidatedAt)
	}
	for _, r := range v.Reasons {
		pv.Reasons = append(pv.Reasons, &pecetv1.Reason{Code: string(r.Code), Message: r.Message})
	}
	hashName := info.Hash.String()
	if info.Hash == 0 {
		hashName = info.HashOID.String()
	}
	imprint := hex.EncodeToString(info.Digest)
	if *asJSON {
		if opts.NoImprint {
			printJSON(map[string]any{"serial": info.Serial.Text(16), "policy": info.Policy.String(),
				"imprint": map[string]any{"hash": hashName, "digest": imprint, "checked": false}})
		}
	} else {
		fmt.Printf("serial:        %s\npolicy:        %s\n", info.Serial.Text(16), info.Policy)
		if opts.NoImprint {
			fmt.Printf("imprint:       %s %s (not compared: no --data or --digest)\n", hashName, imprint)
		}
	}
	return printVerdict(pv, *asJSON)
}
