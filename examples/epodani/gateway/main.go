// Command gateway is the receiving side of the e-podání example: it reads a
// filing (GovTalk envelope with a ČSSZ message), has pecet decrypt the body
// with the gateway's key on the HSM, gunzips it with a bound on the expanded
// size, has pecet verify the signature against the sentence (detached, or
// attached and compared with it), and prints the verdict and, when VALID, the
// number of employees. It never prints the sentence or
// anything from it but the count (birth numbers are personal data).
//
//	gateway --dev-dir .pecet-dev --in filing.xml
//
// Exit status: 0 VALID, 1 INVALID or INDETERMINATE, 2 the filing cannot be
// read or opened.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/examples/epodani/govtalk"
)

func main() {
	devDir := flag.String("dev-dir", "", "pecet dev folder (default: ./.pecet-dev or PECET_DEV_DIR)")
	in := flag.String("in", "filing.xml", "the filing to read")
	maxExpanded := flag.Int64("max-expanded", 50<<20, "largest data sentence the gzip body may expand to, in `bytes`")
	flag.Parse()
	code, err := run(*devDir, *in, *maxExpanded)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: %v\n", err)
	}
	os.Exit(code)
}

func run(devDir, in string, maxExpanded int64) (int, error) {
	f, err := os.Open(in)
	if err != nil {
		return 2, err
	}
	filing, err := govtalk.Parse(f)
	f.Close()
	if err != nil {
		return 2, err
	}
	if filing.Class != "CSSZ_PRIHL" || filing.Qualifier != "request" || filing.Function != "submit" {
		return 2, fmt.Errorf("not a PRIHL submission request (Class %q, Qualifier %q, Function %q)", filing.Class, filing.Qualifier, filing.Function)
	}
	opts, err := client.Options{DevDir: devDir, Role: "gateway"}.Resolve()
	if err != nil {
		return 2, err
	}
	cc, err := client.Dial(opts)
	if err != nil {
		return 2, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	body := filing.Body
	if filing.Encrypted {
		dr, err := cc.Envelope.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: body})
		if err != nil {
			return 2, fmt.Errorf("decrypt: %w", err)
		}
		fmt.Printf("decrypted with %s version %d\n", dr.GetKey(), dr.GetVersion())
		body = dr.GetData()
	}
	sentence := body
	if filing.ContentEncoding == "gzip" {
		if sentence, err = gunzip(body, maxExpanded); err != nil {
			return 2, err
		}
	}
	// The sentence always goes with the signature: pecet verifies a
	// detached signature over it, and compares it with the content of an
	// attached one (INVALID, CONTENT_MISMATCH, when they differ), so a
	// VALID verdict is always about this sentence.
	vr, err := cc.Sign.Verify(ctx, &pecetv1.VerifyRequest{Signature: filing.Signature, Detached: &pecetv1.VerifyRequest_Content{Content: sentence}})
	if err != nil {
		return 2, fmt.Errorf("verify: %w", err)
	}
	v := vr.GetVerdict()
	fmt.Printf("signature: %s\nsigner: %s\n", v.GetStatus(), v.GetSubject())
	switch vr.GetContentSource() {
	case pecetv1.VerifyResponse_EMBEDDED:
		fmt.Println("content: embedded, compared with the sentence")
	case pecetv1.VerifyResponse_GIVEN_CONTENT:
		fmt.Println("content: the sentence")
	}
	for _, r := range v.GetReasons() {
		fmt.Printf("reason: %s: %s\n", r.GetCode(), r.GetMessage())
	}
	if v.GetStatus() != pecetv1.Verdict_VALID {
		// Nothing from a sentence the signature does not vouch for.
		return 1, nil
	}
	n, err := govtalk.CountEmployees(sentence, int(maxExpanded))
	if err != nil {
		return 2, err
	}
	fmt.Printf("employees: %d\n", n)
	return 0, nil
}

var errTooLarge = errors.New("the gzip body expands beyond --max-expanded")

// gunzip expands at most max bytes: a small filing must not become a
// decompression bomb.
func gunzip(b []byte, max int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("body is not gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, max+1))
	if err != nil {
		return nil, fmt.Errorf("body is not gzip: %w", err)
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("%w (%d bytes)", errTooLarge, max)
	}
	return out, nil
}
