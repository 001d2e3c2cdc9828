package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
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

var encryptCmd = &leaf{synopsis: "(--to CERT.pem | --to-key ALIAS)... --in FILE [--out FILE] [--cipher C] [--key-transport T] [--pem] [--stream auto|always|never]",
	help: streamHelp, role: "client", required: []string{"in"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		var to, toKey listFlag
		fs.Var(&to, "to", "recipient certificate `file` (PEM or DER; repeatable)")
		fs.Var(&toKey, "to-key", "`alias` of a pecet DECRYPT key whose primary certificate is a recipient (repeatable)")
		in := fs.String("in", "", "`file` to encrypt, - for stdin (required)")
		out := fs.String("out", "-", "output `file`, - for stdout")
		cipher := fs.String("cipher", "", "content `cipher`: aes256-gcm, aes128-gcm (AuthEnvelopedData; default aes256-gcm), aes256-cbc, aes128-cbc (EnvelopedData, for receivers that need it; streamed input is always CBC, default aes256-cbc)")
		kt := fs.String("key-transport", "rsa-oaep", "`transport`: rsa-oaep (OAEP with SHA-256), rsa-oaep-sha1, rsa-pkcs1 (legacy receivers)")
		asPEM := fs.Bool("pem", false, "write PEM (-----BEGIN CMS-----) instead of DER")
		legacy := fs.Bool("allow-legacy", false, "encrypt even to certificates without keyEncipherment, with RSA under 2048 bits, or expired (tests against legacy receivers)")
		stream := fs.String("stream", "auto", "`mode`: auto (EncryptStream above the one-message limit), always, never")
		return func(x *call) (int, error) {
			if err := checkStreamMode(*stream); err != nil {
				return usagef("%v", err)
			}
			if len(to)+len(toKey) == 0 {
				return usagef("give at least one recipient: --to CERT.pem or --to-key ALIAS")
			}
			// No --cipher: AES-256-GCM for one message, AES-256-CBC when the input
			// is streamed (GCM is not streamed); decided once the input is open.
			ci, ok := pecetv1.ContentCipher_CONTENT_CIPHER_UNSPECIFIED, true
			if *cipher != "" {
				ci, ok = cipherNames[strings.ToLower(*cipher)]
			}
			if !ok {
				return usagef("--cipher %q: use aes256-gcm, aes128-gcm, aes256-cbc or aes128-cbc", *cipher)
			}
			tr, ok := transportNames[strings.ToLower(*kt)]
			if !ok {
				return usagef("--key-transport %q: use rsa-oaep, rsa-oaep-sha1 or rsa-pkcs1", *kt)
			}
			req := &pecetv1.EncryptRequest{RecipientKeys: toKey, Cipher: ci, KeyTransport: tr, AllowLegacy: *legacy}
			for _, p := range to {
				certs, err := readCertFile(p, false)
				if err != nil {
					return usagef("--to: %v", err)
				}
				// A bundle names one recipient: its first (leaf) certificate.
				req.RecipientCertificates = append(req.RecipientCertificates, certs[0])
			}
			limit := int64(x.c.opts.MaxMessageBytesOrDefault() - 256<<10)
			src, err := openInput(*in, *stream, limit)
			if err != nil {
				return usagef("%v", err)
			}
			defer src.close()
			n := len(req.RecipientCertificates) + len(toKey)
			if ci == pecetv1.ContentCipher_CONTENT_CIPHER_UNSPECIFIED {
				ci = pecetv1.ContentCipher_AES_256_GCM
				if src.stream {
					ci = pecetv1.ContentCipher_AES_256_CBC
				}
				req.Cipher = ci
			}
			if src.stream {
				if ci == pecetv1.ContentCipher_AES_256_GCM || ci == pecetv1.ContentCipher_AES_128_GCM {
					return usagef("--cipher %s is not streamed (its tag is checked only at the end): inputs above %d bytes, or --stream always, need aes256-cbc or aes128-cbc", *cipher, limit)
				}
				if *asPEM {
					return usagef("--pem is not written for streamed output (inputs above %d bytes or --stream always); the DER is what openssl cms -inform DER reads", limit)
				}
				return encryptStreamed(x.c, req, src, *out, n, ci, tr), nil
			}
			req.Data = src.prefix
			if err := x.dial(); err != nil {
				return 0, err
			}
			resp, err := x.cc.Envelope.Encrypt(x.ctx, req)
			if err != nil {
				return 0, err
			}
			der, err := writeCMS(*out, resp.GetEnveloped(), *asPEM, false)
			if err != nil {
				return 0, err
			}
			if x.c.json {
				printJSON(map[string]any{"recipients": n, "cipher": nameOf(cipherNames, ci), "key_transport": nameOf(transportNames, tr), "bytes": len(der), "out": *out})
			} else if *out != "-" {
				fmt.Fprintf(os.Stderr, "encrypted to %d recipient(s) with %s, %s -> %s\n", n, nameOf(cipherNames, ci), nameOf(transportNames, tr), *out)
			}
			return exitOK, nil
		}
	}}

var decryptCmd = &leaf{synopsis: "--in FILE.p7m [--out FILE] [--key ALIAS] [--stream auto|always|never]",
	help: streamHelp, role: "gateway", required: []string{"in"},
	define: func(fs *flag.FlagSet) func(x *call) (int, error) {
		in := fs.String("in", "", "CMS EnvelopedData `file` (DER, BER or PEM), - for stdin (required)")
		out := fs.String("out", "-", "plaintext output `file` (created 0600, replaced by a rename), - for stdout")
		alias := fs.String("key", "", "`alias` of the DECRYPT key to use (default: whichever enabled version the message names)")
		stream := fs.String("stream", "auto", "`mode`: auto (DecryptStream above the one-message limit), always, never")
		return func(x *call) (int, error) {
			if err := checkStreamMode(*stream); err != nil {
				return usagef("%v", err)
			}
			src, err := openInput(*in, *stream, int64(x.c.opts.MaxMessageBytesOrDefault()-64<<10))
			if err != nil {
				return usagef("%v", err)
			}
			defer src.close()
			if src.stream {
				return decryptStreamed(x.c, *alias, src, *in, *out), nil
			}
			b := src.prefix
			if pki.IsPEM(b) {
				if b, err = pki.DecodeOne(*in, b); err != nil {
					return usagef("%v", err)
				}
			}
			if err := x.dial(); err != nil {
				return 0, err
			}
			resp, err := x.cc.Envelope.Decrypt(x.ctx, &pecetv1.DecryptRequest{Enveloped: b, Key: *alias})
			if err != nil {
				return 0, err
			}
			// The plaintext goes only where asked, never into the summary.
			if err := writePrivateOutput(*out, resp.GetData()); err != nil {
				return 0, err
			}
			if x.c.json {
				printJSON(map[string]any{"key": resp.GetKey(), "version": resp.GetVersion(), "cipher": nameOf(cipherNames, resp.GetCipher()),
					"key_transport": nameOf(transportNames, resp.GetKeyTransport()), "bytes": len(resp.GetData()), "out": *out})
			} else if *out != "-" {
				fmt.Fprintf(os.Stderr, "decrypted with %s version %d (%s, %s) -> %s\n", resp.GetKey(), resp.GetVersion(),
					nameOf(cipherNames, resp.GetCipher()), nameOf(transportNames, resp.GetKeyTransport()), *out)
			}
			return exitOK, nil
		}
	}}

// streamHelp is the part of encrypt's and decrypt's --help on streaming.
const streamHelp = `Inputs larger than one gRPC message (24 MiB by default, less room for the
request) go through the streaming RPCs (EncryptStream, DecryptStream) with
--stream auto, the default: a file by its size, stdin after reading up to
the limit; --stream always streams any input, --stream never refuses larger
ones. Streams are AES-CBC only (AES-GCM is checked only at its end: use it
for inputs that fit one message), so without --cipher encrypt writes
AES-256-GCM (AuthEnvelopedData) into one message and AES-256-CBC into a
stream. Streams write DER/BER (no --pem) and keep memory at a few 256 KiB
chunks whatever the size. Without --timeout a stream has one hour. A streamed --out FILE is written beside FILE and renamed only on
success; on stdout, a non-zero exit means the output must be discarded
(AES-CBC padding is checked only at the end).
`

// streamTimeout is a stream's deadline when --timeout is not given: the
// 30-second default of one call is too short for a gigabyte.
const streamTimeout = time.Hour

func (c *conn) dialStream() (*client.Conn, context.Context, context.CancelFunc, error) {
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
	if !set {
		c.timeout = streamTimeout
	}
	return c.dial()
}

func encryptStreamed(c *conn, req *pecetv1.EncryptRequest, src *input, outPath string, n int, ci pecetv1.ContentCipher, tr pecetv1.KeyTransport) int {
	out, err := createOutput(outPath, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pecet encrypt: %v\n", err)
		return exitService
	}
	cc, ctx, done, err := c.dialStream()
	if err != nil {
		out.abort()
		return fail("encrypt", err)
	}
	defer done()
	first := &pecetv1.EncryptStreamRequest{RecipientCertificates: req.RecipientCertificates, RecipientKeys: req.RecipientKeys,
		Cipher: ci, KeyTransport: tr, AllowLegacy: req.AllowLegacy}
	cw := &countWriter{w: out}
	read, err := cc.EncryptStream(ctx, first, src.reader(), cw)
	if err != nil {
		out.abort()
		return fail("encrypt", err)
	}
	if err := out.commit(); err != nil {
		fmt.Fprintf(os.Stderr, "pecet encrypt: %v\n", err)
		return exitService
	}
	if c.json {
		printJSON(map[string]any{"recipients": n, "cipher": nameOf(cipherNames, ci), "key_transport": nameOf(transportNames, tr),
			"bytes": cw.n, "in_bytes": read, "streamed": true, "out": outPath})
	} else if outPath != "-" {
		fmt.Fprintf(os.Stderr, "encrypted %d bytes (streamed) to %d recipient(s) with %s, %s -> %s\n", read, n, nameOf(cipherNames, ci), nameOf(transportNames, tr), outPath)
	}
	return exitOK
}

func decryptStreamed(c *conn, alias string, src *input, inPath, outPath string) int {
	r := bufio.NewReaderSize(src.reader(), 64<<10)
	if head, _ := r.Peek(64); bytes.HasPrefix(bytes.TrimSpace(head), []byte("-----BEGIN")) {
		fmt.Fprintf(os.Stderr, "pecet decrypt: %s: PEM is not streamed; convert it to DER first (openssl cms -cmsout -inform PEM -outform DER)\n", inPath)
		return exitUsage
	}
	out, err := createOutput(outPath, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pecet decrypt: %v\n", err)
		return exitService
	}
	cc, ctx, done, err := c.dialStream()
	if err != nil {
		out.abort()
		return fail("decrypt", err)
	}
	defer done()
	cw := &countWriter{w: out}
	resp, err := cc.DecryptStream(ctx, alias, r, cw)
	if err != nil {
		out.abort()
		if outPath == "-" || outPath == "" {
			fmt.Fprintln(os.Stderr, "pecet decrypt: the stream failed: discard what was written to stdout")
		}
		return fail("decrypt", err)
	}
	if err := out.commit(); err != nil {
		fmt.Fprintf(os.Stderr, "pecet decrypt: %v\n", err)
		return exitService
	}
	if c.json {
		printJSON(map[string]any{"key": resp.GetKey(), "version": resp.GetVersion(), "cipher": nameOf(cipherNames, resp.GetCipher()),
			"key_transport": nameOf(transportNames, resp.GetKeyTransport()), "bytes": cw.n, "streamed": true, "out": outPath})
	} else if outPath != "-" {
		fmt.Fprintf(os.Stderr, "decrypted %d bytes (streamed) with %s version %d (%s, %s) -> %s\n", cw.n, resp.GetKey(), resp.GetVersion(),
			nameOf(cipherNames, resp.GetCipher()), nameOf(transportNames, resp.GetKeyTransport()), outPath)
	}
	return exitOK
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
