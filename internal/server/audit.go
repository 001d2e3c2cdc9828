package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/internal/rpctable"
)

// How an RPC gets audited (Sign, Decrypt, Timestamp and the KeyService
// write calls are; a new RPC that uses a key follows the same steps):
//
//  1. Give the RPC's row in the RPC table (internal/rpctable) an Audit: a
//     function that says, from the request alone, which key and version the
//     call is about and what its input is (the bytes whose SHA-256 goes in
//     the log; never log the bytes themselves).
//  2. In the handler, once it knows more than the request said (the
//     primary version a Sign resolved to, the key version a Decrypt found
//     in the RecipientInfo), call auditKey(ctx, alias, version).
//
// The interceptor then writes a "begin" line before the handler runs and an
// "end" line with the outcome and gRPC code after it; if either cannot be
// written, the call fails with Unavailable and its result is dropped (fail
// closed). With audit.sync: begin the begin line's fsync runs while the
// handler works and the result waits for it; the end line is not waited
// for (audit.Log.Begin, End), except for the rows marked DurableEnd (the
// KeyService changes), whose end line is durable before the result leaves
// under every fsync policy but none (what each audit.Log entry point
// guarantees when it returns: the table above audit.Log.Write).
// Denied calls of any method are audited without a spec.
// A streaming RPC's Audit has First and Input instead: the begin line is
// written at the first request (the parameters), the end line carries the
// SHA-256 of all the input.

// maxAuditAlias is the longest key alias an audit line carries as given. A
// valid alias has at most 64 bytes (keystore.CheckAlias); a longer one is
// refused by the handler, but its begin line is written first, and it must
// not push the line past audit.MaxLine (the call would fail as if the audit
// log were unavailable).
const maxAuditAlias = 64

// auditAlias is the alias as an audit line records it: as given, or, when
// longer than any valid alias, its start and its length.
func auditAlias(k string) string {
	if len(k) <= maxAuditAlias {
		return k
	}
	return fmt.Sprintf("%s…(%d bytes)", strings.ToValidUTF8(k[:maxAuditAlias], ""), len(k))
}

// callRecord is what a handler adds to its call's audit lines.
type callRecord struct {
	mu      sync.Mutex
	key     string
	version int
	request string // dual-control request id
	pending bool   // the call only made a request
	// A batch call's id, RPC, caller and roles (as its begin line has
	// them, settled once for all its item lines), and its item lines,
	// written before its end line with one fsync (batch.go).
	call, rpc    string
	caller, role string
	items        []audit.Event
	archive      string // an archive batch: its root and count
}

type recordKey struct{}

// auditKey records the key and version a call actually used (e.g. the
// primary version that Sign resolved to) for its "end" line.
func auditKey(ctx context.Context, alias string, version int) {
	if r, ok := ctx.Value(recordKey{}).(*callRecord); ok {
		r.mu.Lock()
		r.key, r.version = alias, version
		r.mu.Unlock()
	}
}

// auditArchive records the archive batch a call time-stamped (its root and
// count) for its end line.
func auditArchive(ctx context.Context, batch string) {
	if r, ok := ctx.Value(recordKey{}).(*callRecord); ok {
		r.mu.Lock()
		r.archive = batch
		r.mu.Unlock()
	}
}

// auditRequest records a dual-control request id; pending says the call
// made the request rather than carrying one out.
func auditRequest(ctx context.Context, id string, pending bool) {
	if r, ok := ctx.Value(recordKey{}).(*callRecord); ok {
		r.mu.Lock()
		r.request, r.pending = id, pending
		r.mu.Unlock()
	}
}

func inputHash(parts [][]byte) string {
	if len(parts) == 0 {
		return ""
	}
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func callID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func rolesOf(c *authz.Caller) string {
	if c == nil {
		return ""
	}
	return strings.Join(c.Roles, ",")
}

// deniedTarget is the key alias and version a request names (Sign's and
// Decrypt's key, the KeyService calls' alias), for the denied line: what
// was tried. The alias is cut as begin lines cut it (auditAlias). A stream
// is refused before its first request is read, so its line names none.
func deniedTarget(req any) (string, int) {
	var key string
	switch r := req.(type) {
	case interface{ GetKey() string }:
		key = r.GetKey()
	case interface{ GetAlias() string }:
		key = r.GetAlias()
	}
	var version int
	if r, ok := req.(interface{ GetVersion() uint32 }); ok {
		version = int(r.GetVersion())
	}
	return auditAlias(key), version
}

// auditDenied records a call refused by authorisation, with the key it
// named (req: the unary request; nil for a stream). A failure to write it
// changes nothing for the caller, who is denied either way.
func (s *Server) auditDenied(method string, caller *authz.Caller, req any, err error) {
	key, version := deniedTarget(req)
	ev := audit.Event{Phase: audit.PhaseDenied, Caller: identityOf(caller), Role: rolesOf(caller), RPC: method,
		Key: key, Version: version, Outcome: audit.OutcomeDenied, Code: status.Code(grpcerr.Status(err)).String()}
	if werr := s.d.Audit.Write(ev); werr != nil {
		s.d.Log.Error("audit log cannot be written", "err", werr)
	}
}

// audited runs an authorised handler between its begin and end lines.
//
// A DurableEnd row (KeyService changes: after a machine crash the log must
// say whether a key version was created, disabled or destroyed, not only
// that it may have been) has its end line durable before the result leaves
// under audit.sync: begin too. These calls are rare; the fsync they wait
// for costs nothing that matters.
func (s *Server) audited(ctx context.Context, req any, method string, caller *authz.Caller, spec *rpctable.Audit, handler grpc.UnaryHandler) (any, error) {
	info := spec.Unary(req)
	info.Key = auditAlias(info.Key)
	ev := audit.Event{Phase: audit.PhaseBegin, Call: callID(), Caller: caller.Identity, Role: rolesOf(caller), RPC: method,
		Key: info.Key, Version: info.Version, InputSHA256: inputHash(info.Input), Lifecycle: spec.DurableEnd}
	rec := &callRecord{key: info.Key, version: info.Version, call: ev.Call, rpc: method, caller: ev.Caller, role: ev.Role}
	lifecycle := spec.DurableEnd
	var begun *audit.Begun
	var err error
	if lifecycle {
		err = s.d.Audit.Append(ev) // the end line's Write makes both durable
	} else {
		begun, err = s.d.Audit.Begin(ev)
	}
	if err != nil {
		s.d.Log.Error("audit log cannot be written: call refused", "method", method, "err", err)
		return nil, grpcerr.Status(err)
	}
	resp, err := s.safeHandler(context.WithValue(ctx, recordKey{}, rec), req, method, handler)
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			s.d.Log.Warn("call failed", "method", method, "caller", caller.Identity, "err", err)
		}
		err = grpcerr.Status(err)
	}
	code := status.Code(err)
	rec.mu.Lock()
	ev.Phase, ev.Key, ev.Version, ev.Request = audit.PhaseEnd, rec.key, rec.version, rec.request
	switch {
	case code == codes.OK && rec.pending:
		ev.Outcome = audit.OutcomePending
	case code == codes.OK:
		ev.Outcome = audit.OutcomeOK
	case code == codes.PermissionDenied:
		ev.Outcome, ev.Code = audit.OutcomeDenied, code.String()
	default:
		ev.Outcome, ev.Code = audit.OutcomeError, code.String()
	}
	items := rec.items
	rec.mu.Unlock()
	ev.InputSHA256 = ""
	var werr error
	switch {
	case lifecycle:
		werr = s.d.Audit.Write(ev)
	case len(items) > 0:
		werr = s.d.Audit.EndBatch(begun, items, ev)
	default:
		werr = s.d.Audit.End(begun, ev)
	}
	if werr != nil {
		// The operation ran, but no result leaves without its record.
		s.d.Log.Error("audit log cannot be written: result withheld", "method", method, "err", werr)
		return nil, grpcerr.Status(werr)
	}
	return resp, err
}

// safeHandler turns a panic into Internal so that the end line is written.
func (s *Server) safeHandler(ctx context.Context, req any, method string, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.d.Log.Error("panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error; the server log has the details")
		}
	}()
	return handler(ctx, req)
}

// auditHTTP writes begin and end lines around an HTTP key operation (POST
// /tsa, which has no client certificate: the caller is the peer address).
// The request body is read here (at most limit bytes, the handler's own
// bound) so that its SHA-256 goes into the begin line; a larger body is
// passed on cut at limit+1 bytes for the handler to refuse. If the log
// cannot be written the request gets 503 and the handler never runs. The
// response's status line waits until the begin line is durable
// (audit.sync: begin); if it cannot be, the response is a 503 instead.
func (s *Server) auditHTTP(rpc string, limit int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, "cannot read the request", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		ev := audit.Event{Phase: audit.PhaseBegin, Call: callID(), Caller: "http:" + r.RemoteAddr, RPC: rpc, InputSHA256: inputHash([][]byte{body})}
		begun, err := s.d.Audit.Begin(ev)
		if err != nil {
			s.d.Log.Error("audit log cannot be written: call refused", "rpc", rpc, "err", err)
			http.Error(w, "the audit log cannot be written; retry later", http.StatusServiceUnavailable)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK, begun: begun, s: s, rpc: rpc}
		h.ServeHTTP(rec, r)
		rec.WriteHeader(rec.code) // a handler that wrote nothing still waits
		ev.Phase, ev.InputSHA256, ev.Outcome = audit.PhaseEnd, "", audit.OutcomeOK
		if rec.code >= 400 {
			ev.Outcome, ev.Code = audit.OutcomeError, http.StatusText(rec.code)
		}
		if err := s.d.Audit.End(begun, ev); err != nil {
			// The response may be on its way already; the log says why the
			// end line is missing.
			s.d.Log.Error("audit log cannot be written after the call", "rpc", rpc, "err", err)
		}
	})
}

var errAuditWithheld = errors.New("audit log cannot be written: response withheld")

// statusRecorder keeps the response's status for the end line and holds
// the response back until the begin line is durable.
type statusRecorder struct {
	http.ResponseWriter
	code    int
	begun   *audit.Begun
	s       *Server
	rpc     string
	started bool // the status line was passed on
	failed  bool // the begin line could not be made durable: 503 sent
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.started {
		return
	}
	s.started = true
	s.code = code
	if err := s.begun.Wait(); err != nil {
		s.s.d.Log.Error("audit log cannot be written: result withheld", "rpc", s.rpc, "err", err)
		s.failed, s.code = true, http.StatusServiceUnavailable
		http.Error(s.ResponseWriter, "the audit log cannot be written; retry later", http.StatusServiceUnavailable)
		return
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.WriteHeader(s.code)
	if s.failed {
		return 0, errAuditWithheld
	}
	return s.ResponseWriter.Write(b)
}

// auditedStream writes a stream's begin line when its first request
// arrives (before the handler can use a key: it needs the parameters
// first) and its end line, with the outcome and the SHA-256 of all the
// input, when the handler returns. If the begin line cannot be written the
// first Recv fails with Unavailable; if the end line cannot, the stream
// ends with Unavailable, and the client, which keeps the output only on OK
// (the proto says so), discards it.
func (s *Server) auditedStream(cs *callerStream, method string, caller *authz.Caller, spec *rpctable.Audit, handler grpc.StreamHandler, srv any) error {
	as := &auditStream{callerStream: cs, s: s, spec: spec, h: sha256.New(),
		ev: audit.Event{Phase: audit.PhaseBegin, Call: callID(), Caller: caller.Identity, Role: rolesOf(caller), RPC: method}}
	as.rec = &callRecord{call: as.ev.Call, rpc: method, caller: as.ev.Caller, role: as.ev.Role}
	cs.ctx = context.WithValue(cs.ctx, recordKey{}, as.rec)
	err := s.safeStream(as, method, handler, srv)
	if !as.began {
		// No request, no key operation: nothing to audit.
		return grpcerr.Status(err)
	}
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			s.d.Log.Warn("call failed", "method", method, "caller", caller.Identity, "err", err)
		}
		err = grpcerr.Status(err)
	}
	if as.beginErr != nil {
		return err
	}
	code := status.Code(err)
	ev := as.ev
	as.rec.mu.Lock()
	ev.Phase, ev.Key, ev.Version, ev.Archive = audit.PhaseEnd, as.rec.key, as.rec.version, as.rec.archive
	as.rec.mu.Unlock()
	ev.InputSHA256 = hex.EncodeToString(as.h.Sum(nil))
	switch code {
	case codes.OK:
		ev.Outcome = audit.OutcomeOK
	case codes.PermissionDenied:
		ev.Outcome, ev.Code = audit.OutcomeDenied, code.String()
	default:
		ev.Outcome, ev.Code = audit.OutcomeError, code.String()
	}
	if werr := s.d.Audit.End(as.begun.Load(), ev); werr != nil {
		s.d.Log.Error("audit log cannot be written after the stream", "method", method, "err", werr)
		return grpcerr.Status(werr)
	}
	return err
}

// safeStream turns a panic into Internal so that the end line is written.
func (s *Server) safeStream(ss grpc.ServerStream, method string, handler grpc.StreamHandler, srv any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.d.Log.Error("panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error; the server log has the details")
		}
	}()
	return handler(srv, ss)
}

// auditStream writes the begin line at the first request and hashes the
// input of every request.
type auditStream struct {
	*callerStream
	s     *Server
	spec  *rpctable.Audit
	rec   *callRecord
	ev    audit.Event
	h     hash.Hash
	began bool
	// begun is set by RecvMsg and read by SendMsg, which a handler may
	// call from another goroutine.
	begun    atomic.Pointer[audit.Begun]
	beginErr error
	sent     bool // a response went out (after the begin line was durable)
}

// SendMsg holds the stream's first output back until its begin line is
// durable (audit.sync: event and begin; none does not wait).
func (a *auditStream) SendMsg(m any) error {
	if !a.sent {
		if err := a.begun.Load().Wait(); err != nil {
			a.s.d.Log.Error("audit log cannot be written: stream output withheld", "method", a.ev.RPC, "err", err)
			return grpcerr.Status(err)
		}
		a.sent = true
	}
	return a.callerStream.SendMsg(m)
}

func (a *auditStream) RecvMsg(m any) error {
	if a.beginErr != nil {
		return a.beginErr
	}
	if err := a.callerStream.RecvMsg(m); err != nil {
		return err
	}
	if !a.began {
		a.began = true
		info := a.spec.First(m)
		info.Key = auditAlias(info.Key)
		a.ev.Key, a.ev.Version = info.Key, info.Version
		a.rec.mu.Lock()
		a.rec.key, a.rec.version = info.Key, info.Version
		a.rec.mu.Unlock()
		// BeginAhead: a stream's output leaves before its end line is
		// written, so under audit.sync: event too the first output waits
		// for the begin line's fsync (one more fsync per stream, which
		// carries megabytes).
		begun, err := a.s.d.Audit.BeginAhead(a.ev)
		a.begun.Store(begun)
		if err != nil {
			a.s.d.Log.Error("audit log cannot be written: stream refused", "method", a.ev.RPC, "err", err)
			a.beginErr = grpcerr.Status(err)
			return a.beginErr
		}
	}
	a.h.Write(a.spec.Input(m))
	return nil
}
