package server

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
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

// authorize identifies and authorises the caller and takes the call's
// tokens from its rate, in that order, and audits a denial: a status error
// when the call may not go on. The rate is checked before the denial is
// audited, so neither an allowed nor a denied caller writes audit lines
// faster than limits.rate_per_client (the limiter's table is bounded:
// ratelimit.NewBounded, for denied identities are the caller's choice);
// and before any work. A call takes one token; an authorised unary batch
// call one per item (batchItems; a stream's requests pay as they are read:
// chargedStream), so that a batch does not multiply the rate
// (docs/security.md "Batch calls and the rate limit").
func (s *Server) authorize(ctx context.Context, lv *Live, method string, req any) (*authz.Caller, error) {
	caller, err := lv.Auth.Authorize(ctx, method)
	items := 1
	if n, ok := batchItems(req); ok && err == nil {
		// A denied call does no work whatever it carries: one token, for
		// its one denied line.
		items = max(1, n)
	}
	if lerr := s.charge(method, identityOf(caller), items, 0); lerr != nil {
		return caller, lerr
	}
	if err != nil {
		s.d.Log.Warn("denied", "method", method, "caller", identityOf(caller), "err", err)
		s.auditDenied(method, caller, req, err)
		return caller, grpcerr.Status(err)
	}
	return caller, nil
}

// batchItems is how many items a request of a batch RPC carries, each of
// which costs a token of limits.rate_per_client (SignDigests and each
// SignDigestsStream request, TimestampBatch, DecryptBatch); ok is false
// for every other request, which costs one token per call.
func batchItems(req any) (n int, ok bool) {
	switch r := req.(type) {
	case *pecetv1.SignDigestsRequest:
		return len(r.GetDigests()), true
	case *pecetv1.TimestampBatchRequest:
		return len(r.GetRequests()), true
	case *pecetv1.DecryptBatchRequest:
		return len(r.GetEnveloped()), true
	}
	return 0, false
}

// charge takes items tokens, less credit already taken, from identity's
// bucket: a status error when it may not. More items than limits.burst is
// InvalidArgument naming both, not ResourceExhausted: no wait lets it
// through, and the caller must split the batch (as for the batch bounds,
// MaxSignDigests and the others).
func (s *Server) charge(method, identity string, items, credit int) error {
	if b := s.d.Limiter.Burst(); b > 0 && items > b {
		s.d.Log.Warn("rate limited: batch above the burst", "method", method, "caller", identity, "items", items, "burst", b)
		return grpcerr.InvalidArgument(fmt.Sprintf("%d items in one call: more than limits.burst (%d), the most limits.rate_per_client lets one client have at once; send at most %d per call", items, b, b))
	}
	if err := s.d.Limiter.AllowN(identity, items-credit); err != nil {
		s.d.Log.Warn("rate limited", "method", method, "caller", identity, "items", items)
		return grpcerr.Status(err)
	}
	return nil
}

// chargedStream charges each request of a batch stream (SignDigestsStream)
// its items as it is read, before the handler sees it and before the
// stream's begin line (the audit wrapper reads through it): a request
// refused here ends the stream with its status, a first one with no audit
// line, as a call refused by the rate. Opening the stream took one token
// (authorize); it counts as the first request's first item.
type chargedStream struct {
	grpc.ServerStream
	s              *Server
	method, caller string
	credit         int // tokens taken at the open, not yet counted
}

func (c *chargedStream) RecvMsg(m any) error {
	if err := c.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	n, ok := batchItems(m)
	if !ok {
		return nil
	}
	// A request costs at least one token, as a call does: an empty one
	// still costs a response, and would otherwise be free without end.
	n = max(1, n)
	credit := min(c.credit, n)
	c.credit = 0
	return c.s.charge(c.method, c.caller, n, credit)
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
	ss = &chargedStream{ServerStream: ss, s: s, method: method, caller: identityOf(caller), credit: 1}
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
