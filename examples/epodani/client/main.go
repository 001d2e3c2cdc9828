// Command client is the sending side of the e-podání example: it signs the
// PRIHL data sentence detached (attached with --attached) with a pecet SIGN key, gzips it (after
// signing, as ČSSZ requires), encrypts it to the office's certificate and
// writes the ČSSZ <Message version="1.1"> inside a GovTalk envelope. It
// uses only pecet's public gRPC API (package client).
//
//	client --dev-dir .pecet-dev --in testdata/prihl.xml --to .pecet-dev/gateway-decrypt.pem --out filing.xml
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
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
	in := flag.String("in", "testdata/prihl.xml", "the PRIHL data sentence")
	to := flag.String("to", "", "the office's encryption certificate, PEM (default: DEV-DIR/gateway-decrypt.pem)")
	key := flag.String("key", "client-sign", "alias of the SIGN key")
	out := flag.String("out", "filing.xml", "the filing to write")
	attached := flag.Bool("attached", false, "embed the sentence in the signature (attached), as some filing clients do; default detached")
	flag.Parse()
	if err := run(*devDir, *in, *to, *key, *out, *attached); err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		os.Exit(1)
	}
}

func run(devDir, in, to, key, out string, attached bool) error {
	opts, err := client.Options{DevDir: devDir, Role: "client"}.Resolve()
	if err != nil {
		return err
	}
	if to == "" {
		if opts.DevDir == "" {
			return fmt.Errorf("--to CERT.pem is required outside a dev folder")
		}
		to = opts.DevDir + "/gateway-decrypt.pem"
	}
	sentence, err := readFile(in, 20<<20)
	if err != nil {
		return err
	}
	certPEM, err := readFile(to, 1<<20)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM certificate", to)
	}

	cc, err := client.Dial(opts)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// 1. Sign the sentence itself, detached (or attached with --attached).
	sig, err := cc.Sign.Sign(ctx, &pecetv1.SignRequest{Key: key, Attached: attached, Input: &pecetv1.SignRequest_Data{Data: sentence}})
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	// 2. gzip after signing.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(sentence); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	// 3. Encrypt to the office's certificate: AES-256-CBC (EnvelopedData),
	// asked for explicitly because pecet's default is AES-256-GCM
	// (AuthEnvelopedData), which a filing receiver may not read; RSA-OAEP-SHA256.
	enc, err := cc.Envelope.Encrypt(ctx, &pecetv1.EncryptRequest{Data: gz.Bytes(), RecipientCertificates: [][]byte{blk.Bytes},
		Cipher: pecetv1.ContentCipher_AES_256_CBC})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	// 4. The ČSSZ message in a GovTalk envelope.
	b, err := govtalk.Marshal(govtalk.Filing{
		Class: "CSSZ_PRIHL", Qualifier: "request", Function: "submit",
		Signature: sig.GetSignature(), Body: enc.GetEnveloped(), Encrypted: true, ContentEncoding: "gzip",
		Vendor: "pecet e-podani example", VendorVersion: "1.0",
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil { //nolint:gosec // the filing is signed and encrypted: nothing in it is secret
		return err
	}
	fmt.Printf("filing written to %s: signed with %s version %d, %d bytes gzipped and encrypted\n", out, sig.GetKey(), sig.GetVersion(), gz.Len())
	return nil
}

func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
