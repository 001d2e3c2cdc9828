package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// batchFiles writes n real files and returns their paths and SHA-256
// digests: detached signatures over digests are verified by OpenSSL over
// the files.
func batchFiles(t *testing.T, n int) ([]string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	paths, sums := make([]string, n), make([][]byte, n)
	for i := range n {
		paths[i] = filepath.Join(dir, fmt.Sprintf("filing-%d.xml", i))
		body := fmt.Appendf(nil, "<PRIHL><employee dep=\"%d\"/></PRIHL>\n", i)
		if err := os.WriteFile(paths[i], body, 0o600); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(body)
		sums[i] = s[:]
	}
	return paths, sums
}

func writePEMFile(t *testing.T, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// itemLines are the audit log's item lines of one batch.
func itemLines(t *testing.T, f *fixture, batch string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for _, e := range auditEvents(t, f.auditFile) {
		if e.Phase == audit.PhaseItem && e.Batch == batch {
			out = append(out, e)
		}
	}
	return out
}

func countItemLines(t *testing.T, f *fixture) int {
	t.Helper()
	n := 0
	for _, e := range auditEvents(t, f.auditFile) {
		if e.Phase == audit.PhaseItem {
			n++
		}
	}
	return n
}

// TestSignDigests: per-item results over real gRPC on a real socket;
// every CMS item verifies with OpenSSL over the file whose digest it
// signed, raw items verify with the certificate's key, a bad digest
// fails alone, and each item has its audit line with the batch id.
func TestSignDigests(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{tcp: true})
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	ctx := ctxT(t)
	paths, sums := batchFiles(t, 5)
	ca := writePEMFile(t, "ca.pem", f.ca.Cert)
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Versions[0].Public.(*ecdsa.PublicKey)
	bad := []byte("short")
	for _, tt := range []struct {
		name      string
		digests   [][]byte
		raw, tsa  bool
		wantCodes []codes.Code
	}{
		{"cms", sums, false, false, []codes.Code{0, 0, 0, 0, 0}},
		{"cms, one digest too short", [][]byte{sums[0], bad, sums[2]}, false, false, []codes.Code{0, codes.InvalidArgument, 0}},
		{"raw", sums, true, false, []codes.Code{0, 0, 0, 0, 0}},
		{"raw, one digest too short", [][]byte{bad, sums[1]}, true, false, []codes.Code{codes.InvalidArgument, 0}},
		{"cades-t", sums[:2], false, true, []codes.Code{0, 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := sc.SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: tt.digests, Raw: tt.raw, Timestamp: tt.tsa})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetResults()) != len(tt.digests) || resp.GetVersion() != 1 || resp.GetBatch() == "" {
				t.Fatalf("%d results, version %d, batch %q", len(resp.GetResults()), resp.GetVersion(), resp.GetBatch())
			}
			lines := itemLines(t, f, resp.GetBatch())
			if len(lines) != len(tt.digests) {
				t.Fatalf("%d item lines, want %d", len(lines), len(tt.digests))
			}
			for i, r := range resp.GetResults() {
				if got := codes.Code(r.GetStatus().GetCode()); got != tt.wantCodes[i] {
					t.Fatalf("item %d: %v %q, want %v", i, got, r.GetStatus().GetMessage(), tt.wantCodes[i])
				}
				l := lines[i]
				if l.Item != i+1 || l.InputSHA256 != audit.InputHash(tt.digests[i]) || l.Key != "client-sign" || l.Version != 1 ||
					l.Caller != "client" || l.Role != "client" || l.Call != resp.GetBatch() || l.RPC != pecetv1.SignService_SignDigests_FullMethodName {
					t.Fatalf("item line %d: %+v", i, l)
				}
				if tt.wantCodes[i] != codes.OK {
					if len(r.GetSignature()) != 0 || l.Outcome != audit.OutcomeError || l.Code != tt.wantCodes[i].String() {
						t.Fatalf("failed item %d: signature %d bytes, line %+v", i, len(r.GetSignature()), l)
					}
					if !strings.Contains(r.GetStatus().GetMessage(), "32") {
						t.Errorf("message %q does not say the length needed", r.GetStatus().GetMessage())
					}
					continue
				}
				if l.Outcome != audit.OutcomeOK {
					t.Fatalf("item line %d: %+v", i, l)
				}
				if tt.tsa != (r.GetTimestampTime() != nil) {
					t.Fatalf("item %d: timestamp time %v", i, r.GetTimestampTime())
				}
				file := paths[indexOf(sums, tt.digests[i])]
				if tt.raw {
					if !ecdsa.VerifyASN1(pub, tt.digests[i], r.GetSignature()) {
						t.Fatalf("raw item %d does not verify", i)
					}
					continue
				}
				sig := filepath.Join(t.TempDir(), "s.p7s")
				if err := os.WriteFile(sig, r.GetSignature(), 0o600); err != nil {
					t.Fatal(err)
				}
				testtool.RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", file, "-CAfile", ca, "-purpose", "any", "-out", os.DevNull)
			}
		})
	}
	// A raw ECDSA item verifies with OpenSSL too (over the digest).
	resp, err := sc.SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: sums[:1], Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	for name, b := range map[string][]byte{
		"pub.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"sig":     resp.GetResults()[0].GetSignature(), "digest": sums[0],
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testtool.RunOpenSSL(t, "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, "pub.pem"), "-in", filepath.Join(dir, "digest"), "-sigfile", filepath.Join(dir, "sig"))
}

func indexOf(all [][]byte, d []byte) int {
	for i, x := range all {
		if string(x) == string(d) {
			return i
		}
	}
	return -1
}

// TestBatchRefusals: the limits and the per-call checks are answered for
// the whole call, before any token work (no item line), with the limit in
// the message; a caller without the role or the key is denied for the
// whole batch.
func TestBatchRefusals(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{tcp: true})
	ctx := ctxT(t)
	client := f.dial(t, "client")
	gateway := f.dial(t, "gateway")
	d := make([]byte, 32)
	many := func(n int, b []byte) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = b
		}
		return out
	}
	tsReqs := func(n int) []*pecetv1.TimestampRequest {
		out := make([]*pecetv1.TimestampRequest, n)
		for i := range out {
			out[i] = &pecetv1.TimestampRequest{Digest: d}
		}
		return out
	}
	for _, tt := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"1001 digests", func() error {
			_, err := pecetv1.NewSignServiceClient(client).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: many(1001, d)})
			return err
		}, codes.InvalidArgument, "at most 1000"},
		{"no digests", func() error {
			_, err := pecetv1.NewSignServiceClient(client).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign"})
			return err
		}, codes.InvalidArgument, "empty"},
		{"raw with timestamp", func() error {
			_, err := pecetv1.NewSignServiceClient(client).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: many(1, d), Raw: true, Timestamp: true})
			return err
		}, codes.InvalidArgument, "raw"},
		{"unknown hash", func() error {
			_, err := pecetv1.NewSignServiceClient(client).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: many(1, d), Hash: 99})
			return err
		}, codes.InvalidArgument, "hash"},
		{"a key the caller may not use", func() error {
			_, err := pecetv1.NewSignServiceClient(client).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "pending", Digests: many(3, d)})
			return err
		}, codes.PermissionDenied, ""},
		{"gateway signs", func() error {
			_, err := pecetv1.NewSignServiceClient(gateway).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: many(3, d)})
			return err
		}, codes.PermissionDenied, ""},
		{"1001 time-stamps", func() error {
			_, err := pecetv1.NewTimestampServiceClient(client).TimestampBatch(ctx, &pecetv1.TimestampBatchRequest{Requests: tsReqs(1001)})
			return err
		}, codes.InvalidArgument, "at most 1000"},
		{"257 messages", func() error {
			_, err := pecetv1.NewEnvelopeServiceClient(gateway).DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: many(257, []byte{0x30, 0})})
			return err
		}, codes.InvalidArgument, "at most 256"},
		{"a message over 64 KiB", func() error {
			_, err := pecetv1.NewEnvelopeServiceClient(gateway).DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: [][]byte{{0x30, 0}, make([]byte, 64<<10+1)}})
			return err
		}, codes.InvalidArgument, "at most 65536"},
		{"client decrypts", func() error {
			_, err := pecetv1.NewEnvelopeServiceClient(client).DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: many(2, []byte{0x30, 0})})
			return err
		}, codes.PermissionDenied, ""},
		{"stream: 1001 digests", func() error {
			st, err := pecetv1.NewSignServiceClient(client).SignDigestsStream(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&pecetv1.SignDigestsRequest{Key: "client-sign", Digests: many(1001, d)}); err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, "at most 1000"},
		{"stream: gateway", func() error {
			st, err := pecetv1.NewSignServiceClient(gateway).SignDigestsStream(ctx)
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.PermissionDenied, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.msg) {
				t.Fatalf("%v, want %v with %q", err, tt.code, tt.msg)
			}
		})
	}
	if n := countItemLines(t, f); n != 0 {
		t.Errorf("%d item lines: a refused batch did token work", n)
	}
	var denied int
	for _, e := range auditEvents(t, f.auditFile) {
		if e.Outcome == audit.OutcomeDenied {
			denied++
		}
	}
	if denied < 4 {
		t.Errorf("%d denied lines, want one per denied call (4)", denied)
	}
}

// TestBatchOneFsyncPerCall: under audit.sync event, a SignDigests of 200
// items costs one fsync, not one per item (counted through the audit
// log's fsync seam).
func TestBatchOneFsyncPerCall(t *testing.T) {
	var syncs atomic.Int64
	f := newFixtureOpts(t, fixtureOpts{auditSync: audit.SyncEvent, auditSyncFile: func(fl *os.File) error { syncs.Add(1); return fl.Sync() }})
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	ctx := ctxT(t)
	_, sums := batchFiles(t, 200)
	before := syncs.Load()
	resp, err := sc.SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: sums, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load() - before; got != 1 {
		t.Errorf("%d fsyncs for a batch of 200, want 1", got)
	}
	if n := len(itemLines(t, f, resp.GetBatch())); n != 200 {
		t.Errorf("%d item lines, want 200", n)
	}
}

// TestTimestampBatch: one RFC 3161 token per imprint, each verified by
// `openssl ts -verify` over its file; an item the TSA refuses is a
// REJECTION in an OK item, an item the call refuses fails alone.
func TestTimestampBatch(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{tcp: true})
	ctx := ctxT(t)
	tc := pecetv1.NewTimestampServiceClient(f.dial(t, "gateway"))
	paths, sums := batchFiles(t, 4)
	k, err := f.store.GetKey(ctx, "tsa")
	if err != nil {
		t.Fatal(err)
	}
	ca := writePEMFile(t, "ca.pem", f.ca.Cert)
	tsaCert := writePEMFile(t, "tsa.pem", k.Versions[0].Certificate())
	reqs := []*pecetv1.TimestampRequest{
		{Digest: sums[0], CertReq: true, Nonce: []byte{1, 2, 3}},
		{Digest: sums[1]},
		{Digest: []byte("short")}, // the TSA refuses: badDataFormat
		{},                        // the call refuses: no digest
		{Digest: sums[2], Nonce: make([]byte, 65)},
		{Digest: sums[3], CertReq: true},
	}
	resp, err := tc.TimestampBatch(ctx, &pecetv1.TimestampBatchRequest{Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	want := []codes.Code{0, 0, 0, codes.InvalidArgument, codes.InvalidArgument, 0}
	files := []string{paths[0], paths[1], "", "", "", paths[3]}
	lines := itemLines(t, f, resp.GetBatch())
	if len(resp.GetResults()) != len(reqs) || len(lines) != len(reqs) {
		t.Fatalf("%d results, %d item lines", len(resp.GetResults()), len(lines))
	}
	for i, r := range resp.GetResults() {
		if got := codes.Code(r.GetStatus().GetCode()); got != want[i] {
			t.Fatalf("item %d: %v %q", i, got, r.GetStatus().GetMessage())
		}
		if lines[i].Item != i+1 || lines[i].InputSHA256 != audit.InputHash(reqs[i].GetDigest()) {
			t.Fatalf("item line %d: %+v", i, lines[i])
		}
		if want[i] != codes.OK {
			continue
		}
		if i == 2 {
			if r.GetResponse().GetStatus() != pecetv1.TimestampResponse_REJECTION || r.GetResponse().GetFailureInfo() != "badDataFormat" {
				t.Fatalf("short digest: %v", r.GetResponse())
			}
			continue
		}
		if r.GetResponse().GetStatus() != pecetv1.TimestampResponse_GRANTED {
			t.Fatalf("item %d: %v", i, r.GetResponse())
		}
		tsr := filepath.Join(t.TempDir(), "r.tsr")
		if err := os.WriteFile(tsr, r.GetResponse().GetResponse(), 0o600); err != nil {
			t.Fatal(err)
		}
		testtool.RunOpenSSL(t, "ts", "-verify", "-in", tsr, "-data", files[i], "-CAfile", ca, "-untrusted", tsaCert)
	}
}

// TestDecryptBatch: each message decrypts as Decrypt would, with the key
// version in its result and its audit line; one that does not decrypt
// fails alone with "decryption failed", saying no more.
func TestDecryptBatch(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{tcp: true})
	ctx := ctxT(t)
	ec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway"))
	k, err := f.store.GetKey(ctx, "gateway-decrypt")
	if err != nil {
		t.Fatal(err)
	}
	cert := k.Versions[0].Certificate()
	var msgs [][]byte
	for i := range 4 {
		der, err := envelope.Encrypt(fmt.Appendf(nil, "message %d", i), []*x509.Certificate{cert}, envelope.Options{})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, der)
	}
	// OpenSSL's EnvelopedData (RSA-OAEP-SHA256, AES-256-CBC) too.
	dir := t.TempDir()
	in, out, certFile := filepath.Join(dir, "in"), filepath.Join(dir, "o.p7m"), writePEMFile(t, "gw.pem", cert)
	if err := os.WriteFile(in, []byte("from openssl"), 0o600); err != nil {
		t.Fatal(err)
	}
	testtool.RunOpenSSL(t, "cms", "-encrypt", "-binary", "-aes-256-cbc", "-outform", "DER", "-in", in, "-out", out, "-recip", certFile,
		"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")
	fromOpenSSL, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), msgs[1]...)
	tampered[len(tampered)-5] ^= 0xff
	batch := [][]byte{msgs[0], tampered, msgs[2], {0x30, 0x03, 0x02, 0x01}, fromOpenSSL, msgs[3]}
	resp, err := ec.DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: batch})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"message 0", "", "message 2", "", "from openssl", "message 3"}
	lines := itemLines(t, f, resp.GetBatch())
	if len(lines) != len(batch) {
		t.Fatalf("%d item lines", len(lines))
	}
	for i, r := range resp.GetResults() {
		if want[i] == "" {
			if codes.Code(r.GetStatus().GetCode()) != codes.InvalidArgument || r.GetResponse() != nil || lines[i].Outcome != audit.OutcomeError {
				t.Fatalf("item %d: %v %v, line %+v", i, r.GetStatus(), r.GetResponse(), lines[i])
			}
			continue
		}
		if r.GetStatus().GetCode() != 0 || string(r.GetResponse().GetData()) != want[i] || r.GetResponse().GetKey() != "gateway-decrypt" || r.GetResponse().GetVersion() != 1 {
			t.Fatalf("item %d: %v %q", i, r.GetStatus(), r.GetResponse().GetData())
		}
		if lines[i].Key != "gateway-decrypt" || lines[i].Version != 1 || lines[i].Outcome != audit.OutcomeOK || lines[i].InputSHA256 != audit.InputHash(batch[i]) {
			t.Fatalf("item line %d: %+v", i, lines[i])
		}
	}
	if m := resp.GetResults()[1].GetStatus().GetMessage(); m != "decryption failed" {
		t.Errorf("tampered message: %q, want only \"decryption failed\"", m)
	}
}

// TestDecryptBatchItemKey: every DecryptBatch item line names the key
// version its message was tried with, the failed ones too (a tampered
// message to version 1 or 2 of a rotated key), and none (no key, version
// 0) when no key was reached: a message that does not parse, one for a
// recipient not on the token. With and without the request's key (docs/api.md
// "DecryptBatch", docs/operations.md "Logs and the audit log").
func TestDecryptBatchItemKey(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{tcp: true})
	ctx := ctxT(t)
	ec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway"))
	k, err := f.store.GetKey(ctx, "gateway-decrypt")
	if err != nil {
		t.Fatal(err)
	}
	v1 := k.Versions[0].Certificate()
	rot, err := f.store.RotateKey(ctx, "gateway-decrypt")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := f.ca.Issue("gateway-decrypt", devca.CMSDecrypt, rot.Public, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(ctx, "gateway-decrypt", 2, []*x509.Certificate{v2, f.ca.Cert}); err != nil {
		t.Fatal(err)
	}
	foreignKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := f.ca.Issue("elsewhere", devca.CMSDecrypt, &foreignKey.PublicKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	encryptTo := func(c *x509.Certificate, tamper bool) []byte {
		der, err := envelope.Encrypt([]byte("<PRIHL rc=\"7401010001\"/>"), []*x509.Certificate{c}, envelope.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if tamper {
			der[len(der)-5] ^= 0xff // in the GCM tag: the key is reached, the content fails
		}
		return der
	}
	type tried struct {
		key     string
		version int
	}
	none := tried{}
	items := []struct {
		msg  []byte
		code codes.Code
		want tried
	}{
		{encryptTo(v1, false), codes.OK, tried{"gateway-decrypt", 1}},
		{encryptTo(v1, true), codes.InvalidArgument, tried{"gateway-decrypt", 1}},
		{encryptTo(v2, false), codes.OK, tried{"gateway-decrypt", 2}},
		{encryptTo(v2, true), codes.InvalidArgument, tried{"gateway-decrypt", 2}},
		{[]byte{0x30, 0x03, 0x02, 0x01}, codes.InvalidArgument, none},
		{encryptTo(foreign, false), codes.FailedPrecondition, none},
	}
	batch := make([][]byte, len(items))
	for i, it := range items {
		batch[i] = it.msg
	}
	for _, key := range []string{"", "gateway-decrypt"} {
		t.Run("key "+key, func(t *testing.T) {
			resp, err := ec.DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: batch, Key: key})
			if err != nil {
				t.Fatal(err)
			}
			lines := itemLines(t, f, resp.GetBatch())
			if len(lines) != len(items) {
				t.Fatalf("%d item lines, want %d", len(lines), len(items))
			}
			for i, it := range items {
				r, l := resp.GetResults()[i], lines[i]
				if got := codes.Code(r.GetStatus().GetCode()); got != it.code {
					t.Fatalf("item %d: %v %q, want %v", i+1, got, r.GetStatus().GetMessage(), it.code)
				}
				if l.Item != i+1 || l.InputSHA256 != audit.InputHash(it.msg) {
					t.Fatalf("item line %d: %+v", i+1, l)
				}
				if got := (tried{l.Key, l.Version}); got != it.want {
					t.Errorf("item %d (%v): line names key %q version %d, want %q version %d", i+1, it.code, got.key, got.version, it.want.key, it.want.version)
				}
			}
		})
	}
}

// TestSignDigestsStream: each request is answered in order, items are
// numbered across the stream in the audit log, and a later request that
// changes the key ends the stream with InvalidArgument.
func TestSignDigestsStream(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{tcp: true})
	ctx := ctxT(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	paths, sums := batchFiles(t, 6)
	ca := writePEMFile(t, "ca.pem", f.ca.Cert)
	st, err := sc.SignDigestsStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][][]byte{sums[:1], sums[1:4], sums[4:]}
	for i, p := range parts {
		req := &pecetv1.SignDigestsRequest{Digests: p}
		if i == 0 {
			req.Key = "client-sign"
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	n := 0
	var batch string
	for i := range parts {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		batch = resp.GetBatch()
		if int(resp.GetFirstItem()) != n || len(resp.GetResults()) != len(parts[i]) {
			t.Fatalf("response %d: first %d, %d results", i, resp.GetFirstItem(), len(resp.GetResults()))
		}
		for _, r := range resp.GetResults() {
			if r.GetStatus().GetCode() != 0 {
				t.Fatal(r.GetStatus())
			}
			sig := filepath.Join(t.TempDir(), "s.p7s")
			if err := os.WriteFile(sig, r.GetSignature(), 0o600); err != nil {
				t.Fatal(err)
			}
			testtool.RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", sig, "-content", paths[n], "-CAfile", ca, "-purpose", "any", "-out", os.DevNull)
			n++
		}
	}
	if _, err := st.Recv(); err == nil || status.Code(err) != codes.Unknown && err.Error() != "EOF" {
		t.Fatalf("after the last response: %v", err)
	}
	lines := itemLines(t, f, batch)
	if len(lines) != len(sums) {
		t.Fatalf("%d item lines", len(lines))
	}
	for i, l := range lines {
		if l.Item != i+1 || l.InputSHA256 != audit.InputHash(sums[i]) || l.RPC != pecetv1.SignService_SignDigestsStream_FullMethodName {
			t.Fatalf("item line %d: %+v", i, l)
		}
	}

	// Another key later in the stream: refused.
	st, err = sc.SignDigestsStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&pecetv1.SignDigestsRequest{Key: "client-sign", Digests: sums[:1]})
	_ = st.Send(&pecetv1.SignDigestsRequest{Key: "other", Digests: sums[:1]})
	_ = st.CloseSend()
	var last error
	for last == nil {
		_, last = st.Recv()
	}
	if status.Code(last) != codes.InvalidArgument {
		t.Fatalf("changed key: %v", last)
	}
}

// TestSignDigestsStreamBackPressure: a client that sends batches and
// reads no response stalls the server: it stops signing (the audit log's
// item lines stop growing well below what was sent) and stops reading, so
// the client's own sends block, instead of the server reading every
// request and holding its results. Then the client goes away and the
// stream ends.
func TestSignDigestsStreamBackPressure(t *testing.T) {
	const (
		perRequest = 200
		requests   = 400 // 2.5 MB of digests: more than the server's 1 MiB stream window
	)
	cfg := softhsm.NewTokenConfig(t)
	cfg.MaxSessions = 2
	store, err := keystore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := newFixtureOpts(t, fixtureOpts{tcp: true, store: store})
	if w := f.srv.workers(); w != 2 {
		t.Fatalf("workers = %d, want the pool's 2", w)
	}
	// Fixed client windows (no BDP growth): what the client absorbs
	// without reading is 64 KiB.
	cc := f.dial(t, "client", grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	st, err := pecetv1.NewSignServiceClient(cc).SignDigestsStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, sums := batchFiles(t, perRequest)
	var sent atomic.Int64
	go func() {
		for i := range requests {
			req := &pecetv1.SignDigestsRequest{Digests: sums, Raw: true}
			if i == 0 {
				req.Key = "client-sign"
			}
			if st.Send(req) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Wait until the server has signed something and then stopped: the
	// count of item lines is the same for two seconds (a loaded machine
	// signs a request's 200 items in well under that).
	last, stable := 0, 0
	for stable < 8 {
		time.Sleep(250 * time.Millisecond)
		n := countItemLines(t, f)
		if n == last && n > 0 {
			stable++
		} else {
			last, stable = n, 0
		}
		if ctx.Err() != nil {
			t.Fatalf("the server never stalled: %d items signed", n)
		}
	}
	// In flight: the 2 requests the workers may hold, the one read, and
	// the responses the transports absorb (each about 15 KB; 64 KiB of
	// client window and gRPC's 64 KiB write quota): about 14 requests.
	const bound = 24 * perRequest
	t.Logf("stalled at %d items signed, %d of %d requests sent", last, sent.Load(), requests)
	if last > bound {
		t.Errorf("%d items signed for a client that reads nothing, want at most %d", last, bound)
	}
	if s := sent.Load(); s >= requests {
		t.Errorf("all %d requests were sent: the server read them without answering", s)
	}
	// The client goes away: the handler returns and writes the stream's
	// end line (a request read but never given a slot must not hold the
	// sender, which would hang the handler for good).
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := 0
		for _, e := range auditEvents(t, f.auditFile) {
			if e.Phase == audit.PhaseEnd && e.RPC == pecetv1.SignService_SignDigestsStream_FullMethodName {
				n++
			}
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no end line 10s after the client went away: the stream's handler never returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// String is what was written so far.
func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBatchItemPanic: a panic in one item (run in a goroutine of its own,
// outside the handler's recover) fails that item alone with Internal,
// goes to the log as the server's panic handler logs it (never the
// item's input), and leaves pecetd serving: for SignDigests and for
// SignDigestsStream.
func TestBatchItemPanic(t *testing.T) {
	logs := &lockedBuffer{}
	f := newFixtureOpts(t, fixtureOpts{tcp: true, deps: func(d *Deps) {
		d.Log = slog.New(slog.NewTextHandler(logs, nil))
	}})
	var calls atomic.Int64
	itemHook = func() {
		if calls.Add(1) == 2 {
			panic("item hook")
		}
	}
	t.Cleanup(func() { itemHook = nil })
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	ctx := ctxT(t)
	_, sums := batchFiles(t, 3)
	check := func(results []*pecetv1.SignDigestResult) {
		t.Helper()
		failed := 0
		for i, r := range results {
			switch codes.Code(r.GetStatus().GetCode()) {
			case codes.OK:
				if len(r.GetSignature()) == 0 {
					t.Errorf("item %d: OK without a signature", i+1)
				}
			case codes.Internal:
				failed++
				if len(r.GetSignature()) != 0 {
					t.Errorf("item %d: Internal with a signature", i+1)
				}
			default:
				t.Errorf("item %d: status %v", i+1, r.GetStatus())
			}
		}
		if failed != 1 {
			t.Errorf("%d items Internal, want the one that panicked", failed)
		}
	}
	resp, err := sc.SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: sums, Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	check(resp.GetResults())

	calls.Store(0)
	st, err := sc.SignDigestsStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pecetv1.SignDigestsRequest{Key: "client-sign", Digests: sums, Raw: true}); err != nil {
		t.Fatal(err)
	}
	sresp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	check(sresp.GetResults())
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err != nil {
			break
		}
	}

	out := logs.String()
	if n := strings.Count(out, "panic in batch item"); n != 2 {
		t.Errorf("%d panic lines in the log, want 2:\n%s", n, out)
	}
	for _, d := range sums {
		if strings.Contains(out, fmt.Sprintf("%x", d)) {
			t.Errorf("the log has an item's input:\n%s", out)
		}
	}
}
