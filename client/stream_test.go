package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// echoEnvelope is a stand-in for pecetd's streaming RPCs that tests the
// client's side of the protocol: it returns the input as the output.
// DecryptStream's first request's key steers it: "no-final" leaves out the
// final response, "fail" fails at once.
type echoEnvelope struct {
	pecetv1.UnimplementedEnvelopeServiceServer
}

func (echoEnvelope) EncryptStream(st pecetv1.EnvelopeService_EncryptStreamServer) error {
	for {
		req, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&pecetv1.EncryptStreamResponse{Enveloped: req.GetData()}); err != nil {
			return err
		}
	}
}

func (echoEnvelope) DecryptStream(st pecetv1.EnvelopeService_DecryptStreamServer) error {
	first, err := st.Recv()
	if err != nil {
		return err
	}
	if first.GetKey() == "fail" {
		return status.Error(codes.InvalidArgument, "decryption failed")
	}
	req := first
	for {
		if err := st.Send(&pecetv1.DecryptStreamResponse{Data: req.GetEnveloped()}); err != nil {
			return err
		}
		req, err = st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if first.GetKey() == "no-final" {
		return nil
	}
	return st.Send(&pecetv1.DecryptStreamResponse{Key: first.GetKey(), Version: 1})
}

func echoConn(t *testing.T) *Conn {
	t.Helper()
	dir := clearEnv(t)
	c := newCerts(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{c.server}, ClientCAs: c.pool, ClientAuth: tls.RequireAndVerifyClientCert})))
	pecetv1.RegisterEnvelopeServiceServer(g, echoEnvelope{})
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	o := c.client
	o.Server = ln.Addr().String()
	conn, err := Dial(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// blockingReader gives data, then blocks until the test ends: a pipe
// whose writer has gone quiet.
type blockingReader struct {
	data []byte
	stop chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) > 0 {
		n := copy(p, b.data)
		b.data = b.data[n:]
		return n, nil
	}
	<-b.stop
	return 0, io.EOF
}

type failingReader struct{ n int }

var errBoom = errors.New("disk on fire")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBoom
	}
	n := min(len(p), f.n)
	f.n -= n
	return n, nil
}

func TestStreams(t *testing.T) {
	conn := echoConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*StreamChunk/16+5)

	var out bytes.Buffer
	last, err := conn.DecryptStream(ctx, "k", bytes.NewReader(data), &out)
	if err != nil || !bytes.Equal(out.Bytes(), data) || last.GetKey() != "k" {
		t.Fatalf("decrypt: %v, %d bytes, last %v", err, out.Len(), last)
	}
	out.Reset()
	n, err := conn.EncryptStream(ctx, &pecetv1.EncryptStreamRequest{RecipientKeys: []string{"k"}}, bytes.NewReader(data), &out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("encrypt: %v, %d in, %d out", err, n, out.Len())
	}

	if _, err := conn.DecryptStream(ctx, "no-final", bytes.NewReader(data), io.Discard); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("no final response: %v", err)
	}
	if _, err := conn.DecryptStream(ctx, "k", &failingReader{n: StreamChunk + 7}, io.Discard); !errors.Is(err, errBoom) {
		t.Fatalf("read error: %v", err)
	}
	// The server fails while the input blocks: the call returns the
	// server's status, it does not wait for the input.
	br := &blockingReader{data: data[:100], stop: make(chan struct{})}
	defer close(br.stop)
	done := make(chan error, 1)
	go func() { _, err := conn.DecryptStream(ctx, "fail", br, io.Discard); done <- err }()
	select {
	case err := <-done:
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DecryptStream waited for an input that had nothing more to say")
	}
}
