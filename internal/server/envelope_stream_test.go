package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// encryptStream sends first (the parameters), then data in pieces of
// chunk bytes from a goroutine (bidi streams need the two directions to
// run at once: flow control stops a sender whose output nobody reads),
// and returns the concatenated CMS.
func encryptStream(ctx context.Context, cc *grpc.ClientConn, first *pecetv1.EncryptStreamRequest, data []byte, chunk int) ([]byte, error) {
	st, err := pecetv1.NewEnvelopeServiceClient(cc).EncryptStream(ctx)
	if err != nil {
		return nil, err
	}
	go sendInChunks(st.Send, st.CloseSend, first, func(r *pecetv1.EncryptStreamRequest, b []byte) { r.Data = b }, data, chunk)
	var out []byte
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r.GetEnveloped()...)
	}
}

// sendInChunks sends data on a client stream in pieces of chunk bytes (put
// into each request by set), the first in first, which carries the
// stream's parameters, then closes the sending side. It stops at the first
// failed send: the caller's receive loop reports why.
func sendInChunks[R any](send func(*R) error, closeSend func() error, first *R, set func(*R, []byte), data []byte, chunk int) {
	req := first
	for {
		n := min(chunk, len(data))
		set(req, data[:n])
		data = data[n:]
		if send(req) != nil {
			return
		}
		req = new(R)
		if len(data) == 0 {
			_ = closeSend()
			return
		}
	}
}

// decryptStream is encryptStream's counterpart; it returns the plaintext
// and the last response (the key version used).
func decryptStream(ctx context.Context, cc *grpc.ClientConn, key string, msg []byte, chunk int) ([]byte, *pecetv1.DecryptStreamResponse, error) {
	st, err := pecetv1.NewEnvelopeServiceClient(cc).DecryptStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	go sendInChunks(st.Send, st.CloseSend, &pecetv1.DecryptStreamRequest{Key: key}, func(r *pecetv1.DecryptStreamRequest, b []byte) { r.Enveloped = b }, msg, chunk)
	var out []byte
	var last *pecetv1.DecryptStreamResponse
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, last, nil
		}
		if err != nil {
			return out, nil, err
		}
		out = append(out, r.GetData()...)
		last = r
	}
}

// TestEnvelopeStreamRoundTrip: a body three times the fixture's 1 MiB
// message limit through EncryptStream and DecryptStream on SoftHSM; the
// unary form refuses it; unary DER opens through DecryptStream; the audit
// log has the stream's begin and end lines with the key version and the
// hash of the whole input.
func TestEnvelopeStreamRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	enc := f.dial(t, "wide-client")
	gw := f.dial(t, "gateway")
	data := make([]byte, 3<<20+5)
	rand.Read(data)

	msg, err := encryptStream(ctx, enc, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}, data, 100<<10)
	if err != nil {
		t.Fatal(err)
	}
	got, last, err := decryptStream(ctx, gw, "", msg, 70<<10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("decrypted %d bytes, want %d", len(got), len(data))
	}
	if last.GetKey() != "gateway-decrypt" || last.GetVersion() != 1 || last.GetCipher() != pecetv1.ContentCipher_AES_256_CBC ||
		last.GetKeyTransport() != pecetv1.KeyTransport_RSA_OAEP || len(last.GetData()) != 0 {
		t.Fatalf("last response %v", last)
	}
	// The same body does not fit one message.
	if _, err := pecetv1.NewEnvelopeServiceClient(gw).Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: msg}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("unary Decrypt of %d bytes: %v", len(msg), err)
	}
	// Unary DER (definite lengths, primitive content) through the stream,
	// in one-request and many-request forms, with the key named.
	// CBC asked for: Encrypt's default is GCM, which is not streamed.
	er, err := pecetv1.NewEnvelopeServiceClient(enc).Encrypt(ctx, &pecetv1.EncryptRequest{Data: data[:100000], RecipientKeys: []string{"gateway-decrypt"}, KeyTransport: pecetv1.KeyTransport_RSA_PKCS1, Cipher: pecetv1.ContentCipher_AES_256_CBC})
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1 << 20, 999} {
		got, last, err = decryptStream(ctx, gw, "gateway-decrypt", er.GetEnveloped(), chunk)
		if err != nil || !bytes.Equal(got, data[:100000]) || last.GetKeyTransport() != pecetv1.KeyTransport_RSA_PKCS1 {
			t.Fatalf("unary DER in %d-byte requests: %v", chunk, err)
		}
	}

	sum := sha256.Sum256(msg)
	var begin, end bool
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC != methodDecryptStream || e.Caller != "gateway" {
			continue
		}
		switch {
		case e.Phase == "begin":
			begin = true
		case e.Phase == "end" && e.InputSHA256 == hex.EncodeToString(sum[:]):
			if e.Key != "gateway-decrypt" || e.Version != 1 || e.Outcome != "ok" {
				t.Errorf("end line %+v", e)
			}
			end = true
		}
	}
	if !begin || !end {
		t.Fatalf("audit: begin %v, end with the input hash %v", begin, end)
	}
}

func TestEnvelopeStreamErrors(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) { d.Envelope.MaxStream = 256 << 10 }})
	ctx := ctxT(t)
	enc := f.dial(t, "wide-client")
	gw := f.dial(t, "gateway")
	data := bytes.Repeat([]byte("<PRIHL/>"), 10000)
	msg, err := encryptStream(ctx, enc, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}, data, 30000)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := pecetv1.NewEnvelopeServiceClient(enc).Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{"gateway-decrypt"}, Cipher: pecetv1.ContentCipher_AES_256_GCM})
	if err != nil {
		t.Fatal(err)
	}
	// The block before the last flips a padding byte: the end-of-contents
	// octets (10), the last segment's 16 bytes and its 2-byte header.
	badPad := bytes.Clone(msg)
	badPad[len(badPad)-10-16-2-1] ^= 1
	big := make([]byte, 300<<10)

	type tc struct {
		name string
		run  func() error
		code codes.Code
		msg  string
	}
	for _, c := range []tc{
		{"gcm encrypt", func() error {
			_, err := encryptStream(ctx, enc, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}, Cipher: pecetv1.ContentCipher_AES_256_GCM}, data, 1000)
			return err
		}, codes.FailedPrecondition, ""},
		{"gcm decrypt", func() error { _, _, err := decryptStream(ctx, gw, "", gcm.GetEnveloped(), 1000); return err }, codes.FailedPrecondition, ""},
		{"bad padding", func() error { _, _, err := decryptStream(ctx, gw, "", badPad, 1000); return err }, codes.InvalidArgument, "decryption failed"},
		{"truncated", func() error { _, _, err := decryptStream(ctx, gw, "", msg[:len(msg)-5], 1000); return err }, codes.InvalidArgument, ""},
		{"key later", func() error {
			st, _ := pecetv1.NewEnvelopeServiceClient(gw).DecryptStream(ctx)
			_ = st.Send(&pecetv1.DecryptStreamRequest{Enveloped: msg[:100]})
			_ = st.Send(&pecetv1.DecryptStreamRequest{Key: "gateway-decrypt", Enveloped: msg[100:]})
			return drainStream(st, &pecetv1.DecryptStreamRequest{}, new(pecetv1.DecryptStreamResponse))
		}, codes.InvalidArgument, "the key belongs in the first request only; later requests carry the message"},
		{"recipients later", func() error {
			st, _ := pecetv1.NewEnvelopeServiceClient(enc).EncryptStream(ctx)
			_ = st.Send(&pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}, Data: data})
			return drainStream(st, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}, new(pecetv1.EncryptStreamResponse))
		}, codes.InvalidArgument, ""},
		{"no request", func() error {
			st, _ := pecetv1.NewEnvelopeServiceClient(gw).DecryptStream(ctx)
			_ = st.CloseSend()
			_, err := st.Recv()
			return err
		}, codes.InvalidArgument, "the stream ended before its first request: send the parameters, then the data"},
		{"no request, encrypt", func() error {
			st, _ := pecetv1.NewEnvelopeServiceClient(enc).EncryptStream(ctx)
			_ = st.CloseSend()
			_, err := st.Recv()
			return err
		}, codes.InvalidArgument, "the stream ended before its first request: send the parameters, then the data"},
		{"empty data", func() error {
			_, err := encryptStream(ctx, enc, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}, nil, 1000)
			return err
		}, codes.InvalidArgument, "data is empty: nothing to encrypt"},
		{"stream limit encrypt", func() error {
			_, err := encryptStream(ctx, enc, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}, big, 64<<10)
			return err
		}, codes.ResourceExhausted, ""},
		{"stream limit decrypt", func() error {
			m := append(bytes.Clone(msg[:len(msg)-10]), 0x04, 0x83, 0x04, 0x80, 0x00) // a 300 KiB segment
			m = append(m, big...)
			_, _, err := decryptStream(ctx, gw, "", m, 64<<10)
			return err
		}, codes.ResourceExhausted, ""},
		{"not the gateway's key", func() error { _, _, err := decryptStream(ctx, gw, "client-sign", msg, 1000); return err }, codes.PermissionDenied, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := status.Convert(c.run())
			if st.Code() != c.code || (c.msg != "" && st.Message() != c.msg) {
				t.Fatalf("got %s %q, want %s %q", st.Code(), st.Message(), c.code, c.msg)
			}
		})
	}
}

// TestEnvelopeStreamCancel: a client that goes away mid-stream ends the
// call with no PKCS#11 session left lent out; the token operation ran
// before the content and holds nothing while it flows.
func TestEnvelopeStreamCancel(t *testing.T) {
	f := newFixture(t)
	enc := f.dial(t, "wide-client")
	gw := f.dial(t, "gateway")
	data := make([]byte, 2<<20)
	msg, err := encryptStream(ctxT(t), enc, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"gateway-decrypt"}}, data, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"cancel", "deadline"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			if how == "deadline" {
				ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
			}
			st, err := pecetv1.NewEnvelopeServiceClient(gw).DecryptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Half the message, then nothing: the server waits for more.
			// Sent from a goroutine: flow control stops the server's
			// output, and so its reading, until the client reads.
			go func() {
				for off := 0; off < len(msg)/2; off += 256 << 10 {
					if st.Send(&pecetv1.DecryptStreamRequest{Enveloped: msg[off : off+256<<10]}) != nil {
						return
					}
				}
			}()
			if how == "cancel" {
				if _, err := st.Recv(); err != nil {
					t.Fatalf("first plaintext: %v", err)
				}
				cancel()
			}
			for {
				if _, err := st.Recv(); err != nil {
					want := map[string]codes.Code{"cancel": codes.Canceled, "deadline": codes.DeadlineExceeded}[how]
					if status.Code(err) != want {
						t.Fatalf("got %v, want %s", err, want)
					}
					break
				}
			}
			testtool.Eventually(t, 5*time.Second, func() bool {
				inUse, _ := f.store.PoolStats()
				return inUse == 0
			}, "every PKCS#11 session back in the pool")
		})
	}
}
