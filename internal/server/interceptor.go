package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
)

// unaryInterceptor authorises, recovers, maps errors to fixed statuses,
// logs one line per call and records metrics. Health and reflection are
// open to any mTLS-authenticated peer.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	method := info.FullMethod
	var caller *authz.Caller
	defer func() {
		if p := recover(); p != nil {
			// Never let bad input crash the service; the stack goes to the
			// log, the client gets a plain Internal.
			s.d.Log.Error("panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error; the server log has the details")
		}
		s.callDone(ctx, method, caller, start, err)
	}()
	if isOpen(method) {
		return handler(ctx, req)
	}
	ctx, lv := s.pin(ctx)
	caller, err = lv.Auth.Authorize(ctx, method)
	if err != nil {
		s.d.Log.Warn("denied", "method", method, "caller", identityOf(caller), "err", err)
		s.auditDenied(method, caller, err)
		return nil, grpcerr.Status(err)
	}
	// The rate is checked after authorisation, so the limiter's buckets
	// are only the configured identities', and before any work.
	if err = s.d.Limiter.Allow(caller.Identity); err != nil {
		s.d.Log.Warn("rate limited", "method", method, "caller", caller.Identity)
		return nil, grpcerr.Status(err)
	}
	ctx = authz.WithCaller(ctx, caller)
	if spec, ok := auditSpecs[method]; ok {
		return s.audited(ctx, req, method, caller, spec, handler)
	}
	resp, err = handler(ctx, req)
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			// The cause (paths, PKCS#11 codes) is for the log only.
			s.d.Log.Warn("call failed", "method", method, "caller", caller.Identity, "err", err)
		}
		err = grpcerr.Status(err)
	}
	return resp, err
}

func isOpen(method string) bool {
	switch method {
	case "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.health.v1.Health/List":
		return true
	}
	return strings.HasPrefix(method, "/grpc.reflection.")
}

// streamInterceptor authorises streaming calls the same way (reflection and
// health Watch are open; every other stream needs a role), records the
// same metrics and log line as a unary call, and audits the streams in
// streamAuditSpecs.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	method := info.FullMethod
	if isOpen(method) {
		return handler(srv, ss)
	}
	start := time.Now()
	var caller *authz.Caller
	defer func() {
		if p := recover(); p != nil {
			s.d.Log.Error("panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error; the server log has the details")
		}
		s.callDone(ss.Context(), method, caller, start, err)
	}()
	sctx, lv := s.pin(ss.Context())
	caller, err = lv.Auth.Authorize(sctx, method)
	if err != nil {
		s.d.Log.Warn("denied", "method", method, "caller", identityOf(caller), "err", err)
		s.auditDenied(method, caller, err)
		return grpcerr.Status(err)
	}
	if err := s.d.Limiter.Allow(caller.Identity); err != nil {
		s.d.Log.Warn("rate limited", "method", method, "caller", caller.Identity)
		return grpcerr.Status(err)
	}
	cs := &callerStream{ServerStream: ss, ctx: authz.WithCaller(sctx, caller)}
	if spec, ok := streamAuditSpecs[method]; ok {
		return s.auditedStream(cs, method, caller, spec, handler, srv)
	}
	err = handler(srv, cs)
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			s.d.Log.Warn("call failed", "method", method, "caller", caller.Identity, "err", err)
		}
	}
	return grpcerr.Status(err)
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (c *callerStream) Context() context.Context { return c.ctx }

func identityOf(c *authz.Caller) string {
	if c == nil {
		return ""
	}
	return c.Identity
}

// callDone records a finished call, unary or stream: the calls and latency
// metrics, and one log line (Debug when OK, Info otherwise).
func (s *Server) callDone(ctx context.Context, method string, caller *authz.Caller, start time.Time, err error) {
	code := status.Code(err)
	s.d.Metrics.Calls.WithLabelValues(method, code.String()).Inc()
	s.d.Metrics.Latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	attrs := []any{"method", method, "code", code.String(), "ms", float64(time.Since(start).Microseconds()) / 1000}
	if caller != nil {
		attrs = append(attrs, "caller", caller.Identity)
	}
	lvl := slog.LevelDebug
	if code != codes.OK {
		lvl = slog.LevelInfo
	}
	s.d.Log.Log(ctx, lvl, "call", attrs...)
}
