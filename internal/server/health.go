package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// drainingHealth is the standard health service whose Watch streams end
// when a drain begins. A Watch never ends by itself, so without this every
// client-side health checker (gRPC's own, a load balancer's) would hold
// GracefulStop for the whole shutdown grace period of every rolling
// restart. Each watcher first receives NOT_SERVING, then the stream ends
// with Unavailable, which tells it to look elsewhere.
type drainingHealth struct {
	*health.Server
	drain <-chan struct{}
}

// watchFlush bounds how long a watcher is given to receive NOT_SERVING
// before its stream is ended anyway.
const watchFlush = time.Second

func (h *drainingHealth) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := &watchStream{ServerStreamingServer: stream, ctx: ctx, notServing: make(chan struct{})}
	go func() {
		select {
		case <-h.drain:
		case <-ctx.Done():
			return
		}
		if !ws.sentNotServing() {
			select {
			case <-ws.notServing:
			case <-time.After(watchFlush):
			case <-ctx.Done():
			}
		}
		cancel()
	}()
	err := h.Server.Watch(req, ws)
	select {
	case <-h.drain:
		if stream.Context().Err() == nil {
			return status.Error(codes.Unavailable, "pecetd is shutting down: watch another replica")
		}
	default:
	}
	return err
}

// watchStream gives the health server's Watch a context that ends with the
// drain, and notes when NOT_SERVING has been sent.
type watchStream struct {
	grpc.ServerStreamingServer[healthpb.HealthCheckResponse]
	ctx        context.Context
	mu         sync.Mutex
	last       healthpb.HealthCheckResponse_ServingStatus
	notServing chan struct{}
	closed     bool
}

func (w *watchStream) Context() context.Context { return w.ctx }

func (w *watchStream) Send(r *healthpb.HealthCheckResponse) error {
	err := w.ServerStreamingServer.Send(r)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = r.GetStatus()
	if err == nil && w.last == healthpb.HealthCheckResponse_NOT_SERVING && !w.closed {
		w.closed = true
		close(w.notServing)
	}
	return err
}

func (w *watchStream) sentNotServing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last == healthpb.HealthCheckResponse_NOT_SERVING
}
