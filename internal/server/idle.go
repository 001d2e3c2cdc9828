package server

import (
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// idleStream ends a stream that makes no progress: a RecvMsg that gets no
// request, or a SendMsg that cannot send (the client reads nothing and
// flow control is full), for longer than timeout fails with
// DeadlineExceeded, and the handler returns. Without it an EncryptStream
// or DecryptStream that sent its first request (or nothing) and then
// stopped held its stream, goroutine and buffers until the client's own
// deadline, if any (docs/security.md "Network, limits and identities"). Keepalive does
// not help: a stalled client still answers pings.
//
// gRPC cannot interrupt a blocked RecvMsg or SendMsg from the outside; the
// call runs in its own goroutine, and when the timeout wins the handler
// returns, which ends the stream and with it the call left behind. Time
// the handler spends working (a token operation) does not count.
type idleStream struct {
	grpc.ServerStream
	timeout time.Duration
	// idle is set once the timeout has fired; every later call fails at
	// once, so no second call runs beside the one left behind.
	idle atomic.Bool
}

func (s *Server) idleTimeout(ss grpc.ServerStream) grpc.ServerStream {
	return &idleStream{ServerStream: ss, timeout: s.d.GRPC.StreamIdleTimeout}
}

func (s *idleStream) RecvMsg(m any) error {
	return s.wait(func() error { return s.ServerStream.RecvMsg(m) })
}

func (s *idleStream) SendMsg(m any) error {
	return s.wait(func() error { return s.ServerStream.SendMsg(m) })
}

func (s *idleStream) errIdle() error {
	return status.Error(codes.DeadlineExceeded, fmt.Sprintf(
		"the stream made no progress for %v (grpc.stream_idle_timeout): send the next request, and read the responses, without pausing that long", s.timeout))
}

func (s *idleStream) wait(op func() error) error {
	if s.idle.Load() {
		return s.errIdle()
	}
	done := make(chan error, 1)
	go func() { done <- op() }()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		s.idle.Store(true)
		return s.errIdle()
	}
}
