package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/internal/rpctable"
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
	if caller, err = s.authorize(ctx, lv, method, req); err != nil {
		return nil, err
	}
	ctx = authz.WithCaller(ctx, caller)
	if spec := rpctable.AuditOf(method); spec != nil {
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

// authorize identifies and authorises the caller and takes one request
// from its rate, in that order, and audits a denial: a status error when
// the call may not go on. The rate is checked before the denial is
// audited, so neither an allowed nor a denied caller writes audit lines
// faster than limits.rate_per_client (the limiter's table is bounded:
// ratelimit.NewBounded, for denied identities are the caller's choice);
// and before any work.
func (s *Server) authorize(ctx context.Context, lv *Live, method string, req any) (*authz.Caller, error) {
	caller, err := lv.Auth.Authorize(ctx, method)
	if lerr := s.d.Limiter.Allow(identityOf(caller)); lerr != nil {
		s.d.Log.Warn("rate limited", "method", method, "caller", identityOf(caller))
		return caller, grpcerr.Status(lerr)
	}
	if err != nil {
		s.d.Log.Warn("denied", "method", method, "caller", identityOf(caller), "err", err)
		s.auditDenied(method, caller, req, err)
		return caller, grpcerr.Status(err)
	}
	return caller, nil
}

// isOpen: health and reflection, as the RPC table marks them.
func isOpen(method string) bool { return rpctable.Open(method) }

// streamInterceptor authorises streaming calls the same way (reflection and
// health Watch are open; every other stream needs a role), records the
// same metrics and log line as a unary call, and audits the streams whose
// row in the RPC table has an Audit.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	method := info.FullMethod
	if isOpen(method) {
		return handler(srv, ss)
	}
	ss = s.idleTimeout(ss)
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
	if caller, err = s.authorize(sctx, lv, method, nil); err != nil {
		return err
	}
	cs := &callerStream{ServerStream: ss, ctx: authz.WithCaller(sctx, caller)}
	if spec := rpctable.AuditOf(method); spec != nil {
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
	lvl := slog.LevelDebug
	if code != codes.OK {
		lvl = slog.LevelInfo
	}
	// A success is logged at Debug, off by default: ask first, so that a
	// call does not build fields nobody writes (TestSuccessLogBuildsNothingAtInfo).
	if !s.d.Log.Enabled(ctx, lvl) {
		return
	}
	ms := slog.Float64("ms", float64(time.Since(start).Microseconds())/1000)
	if caller != nil {
		s.d.Log.LogAttrs(ctx, lvl, "call", slog.String("method", method), slog.String("code", code.String()), ms, slog.String("caller", caller.Identity))
		return
	}
	s.d.Log.LogAttrs(ctx, lvl, "call", slog.String("method", method), slog.String("code", code.String()), ms)
}
