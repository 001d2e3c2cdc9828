package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// StreamChunk is the data one request of EncryptStream or DecryptStream
// carries: within the 64 KiB to 1 MiB the proto recommends.
const StreamChunk = 256 << 10

// ErrIncomplete: a DecryptStream ended without its final response (the
// key version used), so the output must not be trusted.
var ErrIncomplete = errors.New("client: the stream ended without its final response; discard the output")

// EncryptStream sends first (the recipients, cipher and key transport;
// its Data is ignored) and then everything read from r to EncryptStream,
// and writes the CMS EnvelopedData (BER) to w as it arrives. It returns
// the bytes read from r. Memory stays at a few chunks whatever the size.
// On an error what reached w is not a message and must be discarded.
func (c *Conn) EncryptStream(ctx context.Context, first *pecetv1.EncryptStreamRequest, r io.Reader, w io.Writer) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Envelope.EncryptStream(ctx)
	if err != nil {
		return 0, err
	}
	req := proto.Clone(first).(*pecetv1.EncryptStreamRequest)
	sent := pump(ctx, cancel, r, func(b []byte, firstMsg bool) error {
		if !firstMsg {
			return st.Send(&pecetv1.EncryptStreamRequest{Data: b})
		}
		req.Data = b
		return st.Send(req)
	}, st.CloseSend)
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cancel()
			return 0, sent.wait(err)
		}
		if _, err := w.Write(resp.GetEnveloped()); err != nil {
			cancel()
			return 0, sent.wait(err)
		}
	}
	n, err := sent.result()
	return n, err
}

// DecryptStream sends key (may be empty) and everything read from r (a CMS
// EnvelopedData, DER or BER) to DecryptStream and writes the plaintext to
// w as it arrives. It returns the final response, which names the key
// version used. AES-CBC is not authenticated and the padding is checked
// only at the end: on any error, what reached w must be discarded.
func (c *Conn) DecryptStream(ctx context.Context, key string, r io.Reader, w io.Writer) (*pecetv1.DecryptStreamResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Envelope.DecryptStream(ctx)
	if err != nil {
		return nil, err
	}
	sent := pump(ctx, cancel, r, func(b []byte, firstMsg bool) error {
		req := &pecetv1.DecryptStreamRequest{Enveloped: b}
		if firstMsg {
			req.Key = key
		}
		return st.Send(req)
	}, st.CloseSend)
	var last *pecetv1.DecryptStreamResponse
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			cancel()
			return nil, sent.wait(err)
		}
		if last != nil {
			return nil, fmt.Errorf("client: data after the final response: %w", ErrIncomplete)
		}
		if resp.GetKey() != "" {
			last = resp
			continue
		}
		if _, err := w.Write(resp.GetData()); err != nil {
			cancel()
			return nil, sent.wait(err)
		}
	}
	if _, err := sent.result(); err != nil {
		return nil, err
	}
	if last == nil {
		return nil, ErrIncomplete
	}
	return last, nil
}

// sender is the goroutine that reads the input and sends it.
type sender struct {
	done   chan struct{}
	failed chan struct{} // closed, after err is set, before the stream is cancelled
	n      int64
	err    error // a read error of the input (a send error shows in Recv)
}

// pump sends the parameters at once (so that the server can refuse them
// before any input is read), then reads r and sends what each Read gives,
// at most StreamChunk (a pipe's Read returns what is there: waiting to
// fill a chunk would hold back a slow producer's data), then half-closes.
// A read error cancels the stream so that Recv returns.
func pump(ctx context.Context, cancel context.CancelFunc, r io.Reader, send func([]byte, bool) error, closeSend func() error) *sender {
	s := &sender{done: make(chan struct{}), failed: make(chan struct{})}
	go func() {
		defer close(s.done)
		if send(nil, true) != nil {
			return // Recv reports why
		}
		buf := make([]byte, StreamChunk)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if send(buf[:n], false) != nil {
					return
				}
				s.n += int64(n)
			}
			if errors.Is(err, io.EOF) {
				_ = closeSend()
				return
			}
			if err != nil {
				s.err = fmt.Errorf("client: reading the input: %w", err)
				close(s.failed)
				cancel()
				return
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return s
}

// wait returns the input's read error if there was one (the cause of a
// cancelled stream), else err. It does not wait for the sender, which may
// be blocked reading a pipe that has nothing more to say; the stream is
// cancelled, so its next Send fails and it ends.
func (s *sender) wait(err error) error {
	select {
	case <-s.failed:
		return s.err
	default:
		return err
	}
}

func (s *sender) result() (int64, error) {
	<-s.done
	return s.n, s.err
}
