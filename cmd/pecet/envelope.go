package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/pki"
)

// listFlag collects a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

var cipherNames = map[string]pecetv1.ContentCipher{
	"aes256-cbc": pecetv1.ContentCipher_AES_256_CBC,
	"aes128-cbc": pecetv1.ContentCipher_AES_128_CBC,
	"aes256-gcm": pecetv1.ContentCipher_AES_256_GCM,
	"aes128-gcm": pecetv1.ContentCipher_AES_128_GCM,
}

var transportNames = map[string]pecetv1.KeyTransport{
	"rsa-oaep":      pecetv1.KeyTransport_RSA_OAEP,
	"rsa-oaep-sha1": pecetv1.KeyTransport_RSA_OAEP_SHA1,
	"rsa-pkcs1":     pecetv1.KeyTransport_RSA_PKCS1,
}

func nameOf[T comparable](m map[string]T, v T) string {
	for k, x := range m {
		if x == v {
			return k
		}
	}
	return "?"
}

// readCerts reads every certificate of a PEM file (or one DER certificate).
func readCerts(path string) ([][]byte, error) {
	b, err := readInput(path, 1<<20)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		if _, err := x509.ParseCertificate(b); err != nil {
			return nil, fmt.Errorf("%s: not a PEM or DER certificate", path)
		}
		return [][]byte{b}, nil
	}
	out := pki.CertificateBlocks(b)
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no CERTIFICATE in the PEM file", path)
	}
	// A bundle names one recipient: its first (leaf) certificate.
	return out[:1], nil
}

func runEncrypt(args []string) int {
	fs, c := newFlags("encrypt", "encrypt (--to CERT.pem | --to-key ALIAS)... --in FILE [--out FILE] [--cipher C] [--key-transport T] [--pem]", "client")
	var to, toKey listFlag
	fs.Var(&to, "to", "recipient certificate `file` (PEM or DER; repeatable)")
	fs.Var(&toKey, "to-key", "`alias` of a pecet DECRYPT key whose primary certificate is a recipient (repeatable)")
	in := fs.String("in", "", "`file` to encrypt, - for stdin (required)")
	out := fs.String("out", "-", "output `file`, - for stdout")
	cipher := fs.String("cipher", "aes256-cbc", "content `cipher`: aes256-cbc, aes128-cbc (EnvelopedData), aes256-gcm, aes128-gcm (AuthEnvelopedData)")
	kt := fs.String("key-transport", "rsa-oaep", "`transport`: rsa-oaep (OAEP with SHA-256), rsa-oaep-sha1, rsa-pkcs1 (legacy receivers)")
	asPEM := fs.Bool("pem", false, "write PEM (-----BEGIN CMS-----) instead of DER")
	legacy := fs.Bool("allow-legacy", false, "encrypt even to certificates without keyEncipherment, with RSA under 2048 bits, or expired (tests against legacy receivers)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *in == "" {
		return usageErr(fs, "--in FILE is required")
	}
	if len(to)+len(toKey) == 0 {
		return usageErr(fs, "give at least one recipient: --to CERT.pem or --to-key ALIAS")
	}
	ci, ok := cipherNames[strings.ToLower(*cipher)]
	if !ok {
		return usageErr(fs, "--cipher %q: use aes256-cbc, aes128-cbc, aes256-gcm or aes128-gcm", *cipher)
	}
	tr, ok := transportNames[strings.ToLower(*kt)]
	if !ok {
		return usageErr(fs, "--key-transport %q: use rsa-oaep, rsa-oaep-sha1 or rsa-pkcs1", *kt)
	}
	req := &pecetv1.EncryptRequest{RecipientKeys: toKey, Cipher: ci, KeyTransport: tr, AllowLegacy: *legacy}
	for _, p := range to {
		certs, err := readCerts(p)
		if err != nil {
			return usageErr(fs, "--to: %v", err)
		}
		req.RecipientCertificates = append(req.RecipientCertificates, certs...)
	}
	data, err := readInput(*in, int64(c.opts.MaxMessageBytesOrDefault()-256<<10))
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	req.Data = data
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("encrypt", err)
	}
	defer done()
	resp, err := cc.Envelope.Encrypt(ctx, req)
	if err != nil {
		return fail("encrypt", err)
	}
	der := resp.GetEnveloped()
	if *asPEM {
		der = pem.EncodeToMemory(&pem.Block{Type: "CMS", Bytes: der})
	}
	if err := writeOutput(*out, der); err != nil {
		fmt.Fprintf(os.Stderr, "pecet encrypt: %v\n", err)
		return exitService
	}
	n := len(req.RecipientCertificates) + len(toKey)
	if c.json {
		printJSON(map[string]any{"recipients": n, "cipher": nameOf(cipherNames, ci), "key_transport": nameOf(transportNames, tr), "bytes": len(der), "out": *out})
	} else if *out != "-" {
		fmt.Fprintf(os.Stderr, "encrypted to %d recipient(s) with %s, %s -> %s\n", n, nameOf(cipherNames, ci), nameOf(transportNames, tr), *out)
	}
	return exitOK
}

func runDecrypt(args []string) int {
	fs, c := newFlags("decrypt", "decrypt --in FILE.p7m [--out FILE] [--key ALIAS]", "gateway")
	in := fs.String("in", "", "CMS EnvelopedData `file` (DER, BER or PEM), - for stdin (required)")
	out := fs.String("out", "-", "plaintext output `file`, - for stdout")
	alias := fs.String("key", "", "`alias` of the DECRYPT key to use (default: whichever enabled version the message names)")
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *in == "" {
		return usageErr(fs, "--in FILE is required")
	}
	b, err := readInput(*in, int64(c.opts.MaxMessageBytesOrDefault()-64<<10))
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN")) {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return usageErr(fs, "%s: bad PEM", *in)
		}
		b = blk.Bytes
	}
	cc, ctx, done, err := c.dial()
	if err != nil {
		return fail("decrypt", err)
	}
	defer done()
	resp, err := cc.Envelope.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: b, Key: *alias})
	if err != nil {
		return fail("decrypt", err)
	}
	// The plaintext goes only where asked, never into the summary.
	if err := writeOutput(*out, resp.GetData()); err != nil {
		fmt.Fprintf(os.Stderr, "pecet decrypt: %v\n", err)
		return exitService
	}
	if c.json {
		printJSON(map[string]any{"key": resp.GetKey(), "version": resp.GetVersion(), "cipher": nameOf(cipherNames, resp.GetCipher()),
			"key_transport": nameOf(transportNames, resp.GetKeyTransport()), "bytes": len(resp.GetData()), "out": *out})
	} else if *out != "-" {
		fmt.Fprintf(os.Stderr, "decrypted with %s version %d (%s, %s) -> %s\n", resp.GetKey(), resp.GetVersion(),
			nameOf(cipherNames, resp.GetCipher()), nameOf(transportNames, resp.GetKeyTransport()), *out)
	}
	return exitOK
}
