package server

import (
	"bufio"
	"errors"
	"io"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
)

// streamResponseBytes is the most output one stream response carries
// (the proto comments promise 256 KiB): large enough that per-message
// costs are noise, small enough that a stream holds little.
const streamResponseBytes = 256 << 10

const (
	methodEncryptStream = pecetv1.EnvelopeService_EncryptStream_FullMethodName
	methodDecryptStream = pecetv1.EnvelopeService_DecryptStream_FullMethodName
)

var errNoFirstRequest = grpcerr.InvalidArgument("the stream ended before its first request: send the parameters, then the data")

// recvFirst reads a stream's first request, the one with the parameters.
func recvFirst[T any](recv func() (*T, error)) (*T, error) {
	first, err := recv()
	if errors.Is(err, io.EOF) {
		return nil, errNoFirstRequest
	}
	return first, err
}

// EncryptStream: see the proto. The next request is read only after the
// output of the previous one is sent, so flow control bounds the memory.
func (es *envelopeService) EncryptStream(stream pecetv1.EnvelopeService_EncryptStreamServer) error {
	ctx := stream.Context()
	first, err := recvFirst(stream.Recv)
	if err != nil {
		return err
	}
	c, ok := ciphers[first.GetCipher()]
	if !ok {
		return grpcerr.InvalidArgument("unknown cipher: use AES_256_CBC or AES_128_CBC")
	}
	kt, ok := transports[first.GetKeyTransport()]
	if !ok {
		return grpcerr.InvalidArgument("unknown key transport: use RSA_OAEP, RSA_OAEP_SHA1 or RSA_PKCS1")
	}
	certs, err := es.recipients(ctx, first.GetRecipientCertificates(), first.GetRecipientKeys())
	if err != nil {
		return err
	}
	bytesIn := es.s.d.Metrics.StreamBytes.WithLabelValues(methodEncryptStream, "in")
	bytesOut := es.s.d.Metrics.StreamBytes.WithLabelValues(methodEncryptStream, "out")
	out := bufio.NewWriterSize(writerFunc(func(p []byte) (int, error) {
		// Send serialises p before it returns: the buffer may be reused.
		if err := stream.Send(&pecetv1.EncryptStreamResponse{Enveloped: p}); err != nil {
			return 0, err
		}
		bytesOut.Add(float64(len(p)))
		return len(p), nil
	}), streamResponseBytes)
	ew, err := envelope.NewEncryptWriter(out, certs, envelope.Options{
		Cipher: c, KeyTransport: kt, AllowLegacy: first.GetAllowLegacy(), Now: es.s.d.Now(), Limits: es.s.d.Envelope,
	}, 0)
	if err != nil {
		return err
	}
	req := first
	for {
		bytesIn.Add(float64(len(req.GetData())))
		if _, err := ew.Write(req.GetData()); err != nil {
			return err
		}
		req, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if len(req.GetRecipientCertificates()) > 0 || len(req.GetRecipientKeys()) > 0 || req.GetCipher() != 0 || req.GetKeyTransport() != 0 || req.GetAllowLegacy() {
			return grpcerr.InvalidArgument("parameters belong in the first request only; later requests carry data")
		}
	}
	if err := ew.Close(); err != nil {
		if errors.Is(err, envelope.ErrEmptyContent) {
			return grpcerr.InvalidArgument("data is empty: nothing to encrypt")
		}
		return err
	}
	return out.Flush()
}

// DecryptStream: see the proto.
func (es *envelopeService) DecryptStream(stream pecetv1.EnvelopeService_DecryptStreamServer) error {
	ctx := stream.Context()
	first, err := recvFirst(stream.Recv)
	if err != nil {
		return err
	}
	caller := authz.CallerFrom(ctx)
	if a := first.GetKey(); a != "" && !caller.MayUseKey(a) {
		return authz.ErrDenied
	}
	find, err := es.finder(ctx, first.GetKey())
	if err != nil {
		return err
	}
	bytesIn := es.s.d.Metrics.StreamBytes.WithLabelValues(methodDecryptStream, "in")
	bytesOut := es.s.d.Metrics.StreamBytes.WithLabelValues(methodDecryptStream, "out")
	in := &recvReader{buf: first.GetEnveloped(), recv: func() ([]byte, error) {
		req, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if req.GetKey() != "" {
			return nil, grpcerr.InvalidArgument("the key belongs in the first request only; later requests carry the message")
		}
		return req.GetEnveloped(), nil
	}}
	in.count = func(n int) { bytesIn.Add(float64(n)) }
	in.count(len(first.GetEnveloped()))
	dr, err := envelope.NewDecryptReader(ctx, in, find, envelope.DecryptOptions{OAEP: es.s.d.OAEP, Limits: es.s.d.Envelope}, 0)
	if err != nil {
		return es.decryptFailed(caller, err)
	}
	buf := make([]byte, streamResponseBytes)
	for {
		n, err := io.ReadFull(dr, buf)
		if n > 0 {
			if serr := stream.Send(&pecetv1.DecryptStreamResponse{Data: buf[:n]}); serr != nil {
				return serr
			}
			bytesOut.Add(float64(n))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return es.decryptFailed(caller, err)
		}
	}
	res := dr.Result()
	v := res.Key.(*keystore.KeyDecrypter).Version()
	return stream.Send(&pecetv1.DecryptStreamResponse{
		Key: v.Alias, Version: uint32(v.Version), Cipher: cipherProto(res.Cipher), KeyTransport: transportProto(res.KeyTransport),
	})
}

// decryptFailed logs a failed decryption without its cause (there is none
// attached, so that the log is no oracle either) and returns err.
func (es *envelopeService) decryptFailed(caller *authz.Caller, err error) error {
	if errors.Is(err, envelope.ErrDecrypt) {
		es.s.d.Log.Info("decryption failed", "caller", caller.Identity, "method", methodDecryptStream)
	}
	return err
}

// recvReader is an io.Reader over the data of a stream's requests: buf,
// then each next request's. Errors of recv (the client went away, the
// deadline passed, a misplaced parameter) are returned as they are.
type recvReader struct {
	buf   []byte
	recv  func() ([]byte, error)
	count func(int)
	err   error
}

func (r *recvReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.buf, r.err = r.recv()
		r.count(len(r.buf))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
