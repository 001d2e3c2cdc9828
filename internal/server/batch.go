package server

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// The batch RPCs (docs/api.md "Batch calls"): many items per call, the key
// looked up and the caller authorised once, the items run in parallel up
// to the token's session pool (each item takes its own session), each
// with its own status, and each with its own audit line (one fsync per
// batch: audit.Log.EndBatch, WriteItems). Each item costs one token of
// limits.rate_per_client, taken before the handler runs (authorize,
// chargedStream).

// Batch limits, checked before any token work (InvalidArgument above,
// naming the limit).
const (
	// MaxSignDigests bounds the digests of one SignDigests request (and
	// of each SignDigestsStream request).
	MaxSignDigests = 1000
	// MaxTimestampBatch bounds the requests of one TimestampBatch.
	MaxTimestampBatch = 1000
	// MaxDecryptBatch bounds the messages of one DecryptBatch, and
	// MaxDecryptBatchItem each message (all of them together are bounded
	// by the gRPC message limit).
	MaxDecryptBatch     = 256
	MaxDecryptBatchItem = 64 << 10
)

// workers is how many items of a batch run at once: the token's session
// pool (keystore.TokenInfo.Sessions), the most that can run in parallel.
func (s *Server) workers() int {
	if t, ok := s.d.Keys.(interface{ Token() keystore.TokenInfo }); ok && t.Token().Sessions > 0 {
		return t.Token().Sessions
	}
	return keystore.DefaultMaxSessions
}

// forEach runs fn for items 0..n-1, at most len(sem) at once, on the
// server's kept goroutines (goPool).
func (s *Server) forEach(n int, sem chan struct{}, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		s.items.Go(func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		})
	}
	wg.Wait()
}

// itemHook, when set (tests only), runs at the start of every batch
// item's work, inside runItem.
var itemHook func()

// runItem runs fn, the work of one batch item, in the goroutine forEach
// (or the stream's dispatcher) started for it: outside the handler's own
// recover, so a panic is recovered here, logged as the server's panic
// handler logs it (never the item's input), and the item alone fails
// with Internal.
func (s *Server) runItem(ctx context.Context, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			method, _ := grpc.Method(ctx)
			s.d.Log.Error("panic in batch item", "method", method, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error; the server log has the details")
		}
	}()
	if itemHook != nil {
		itemHook()
	}
	return fn()
}

// itemStatus is an item's outcome as the API reports it: the status the
// single call would have returned (grpcerr maps the error).
func itemStatus(err error) *pecetv1.ItemStatus {
	if err == nil {
		return &pecetv1.ItemStatus{}
	}
	st := status.Convert(grpcerr.Status(err))
	return &pecetv1.ItemStatus{Code: uint32(st.Code()), Message: st.Message()}
}

// itemLine is the audit line of one item (audit.PhaseItem): the fields
// of a single call's lines, with the batch call's id (in call and batch)
// and the item's position from 1. The caller and roles are the call's,
// settled once in its record.
func itemLine(rec *callRecord, n int, alias string, version int, input []byte, err error) audit.Event {
	ev := audit.Event{Phase: audit.PhaseItem, Call: rec.call, Caller: rec.caller, Role: rec.role, RPC: rec.rpc,
		Key: auditAlias(alias), Version: version, InputSHA256: audit.InputHash(input), Outcome: audit.OutcomeOK, Batch: rec.call, Item: n}
	if err != nil {
		code := status.Code(grpcerr.Status(err))
		ev.Outcome, ev.Code = audit.OutcomeError, code.String()
		if code == codes.PermissionDenied {
			ev.Outcome = audit.OutcomeDenied
		}
	}
	return ev
}

// recordOf is the call's audit record (set by the interceptor; a test
// server without one gets a throwaway record).
func recordOf(ctx context.Context) *callRecord {
	if r, ok := ctx.Value(recordKey{}).(*callRecord); ok {
		return r
	}
	return &callRecord{}
}

// addItems hands a unary batch's item lines to the interceptor, which
// writes them before the end line (audited).
func (r *callRecord) addItems(items []audit.Event) {
	r.mu.Lock()
	r.items = append(r.items, items...)
	r.mu.Unlock()
}

// digestBatch is what a SignDigests call (or stream) settles once: the
// key version, the hash and the options every item is signed with.
type digestBatch struct {
	key  *keystore.KeySigner
	v    keystore.Version
	hash crypto.Hash
	raw  bool
	opts signer.Options
	// authority is the TSA when time-stamps were asked for.
	authority *tsa.Authority
}

// prepareDigests checks a SignDigests request (or a stream's first) and
// looks the key up once: everything but the digests themselves.
func (ss *signService) prepareDigests(ctx context.Context, req *pecetv1.SignDigestsRequest) (*digestBatch, error) {
	if req.GetKey() == "" {
		return nil, grpcerr.InvalidArgument("key is required: the alias of a SIGN key")
	}
	h, err := hashOf(req.GetHash())
	if err != nil {
		return nil, err
	}
	if err := checkDigestCount(req); err != nil {
		return nil, err
	}
	if req.GetRaw() && req.GetTimestamp() {
		return nil, grpcerr.InvalidArgument("timestamp is not possible with raw: a bare signature has no attribute to carry the token")
	}
	if !authz.CallerFrom(ctx).MayUseKey(req.GetKey()) {
		return nil, authz.ErrDenied
	}
	b := &digestBatch{hash: h, raw: req.GetRaw()}
	if req.GetTimestamp() {
		if b.authority = ss.s.live(ctx).TSA; b.authority == nil {
			return nil, tsa.ErrNoTSA
		}
	}
	b.key, err = ss.s.d.Keys.Signer(ctx, req.GetKey(), int(req.GetVersion()), keystore.PurposeSign)
	if err != nil {
		return nil, err
	}
	b.v = b.key.Version()
	auditKey(ctx, b.v.Alias, b.v.Version)
	if err := ss.s.checkAdmitted(b.v); err != nil {
		return nil, err
	}
	b.opts = signer.Options{Hash: h, SigningTime: ss.s.d.Now().UTC(), ECDSACheck: ss.s.ecdsaCheck, RSACheck: ss.s.rsaCheck}
	return b, nil
}

func checkDigestCount(req *pecetv1.SignDigestsRequest) error {
	if n := len(req.GetDigests()); n > MaxSignDigests {
		return grpcerr.InvalidArgument(fmt.Sprintf("%d digests: at most %d per request", n, MaxSignDigests))
	}
	return nil
}

// signOne signs one digest of a batch.
func (ss *signService) signOne(ctx context.Context, b *digestBatch, digest []byte) ([]byte, *timestamppb.Timestamp, error) {
	if len(digest) != b.hash.Size() {
		return nil, nil, grpcerr.InvalidArgument(fmt.Sprintf("digest of %d bytes: %v digests have %d", len(digest), b.hash, b.hash.Size()))
	}
	if b.raw {
		sig, err := b.key.SignContext(ctx, digest, b.hash)
		if err != nil {
			return nil, nil, err
		}
		// A raw signature that does not verify with the key's certificate
		// never leaves (signer.Options.RSACheck, for every raw signature).
		if err := signer.CheckOwnSignature(b.v.Public, b.hash, digest, sig); err != nil {
			return nil, nil, err
		}
		return sig, nil, nil
	}
	opts := b.opts
	var stamped *tsa.TSTInfo
	if b.authority != nil {
		// CAdES-T as in Sign: one TSA call per item.
		opts.UnsignedAttributes = func(sigValue []byte) ([]signer.Attribute, error) {
			sum := crypto.SHA256.New()
			sum.Write(sigValue)
			tok, info, err := b.authority.Token(ctx, sum.Sum(nil), crypto.SHA256)
			res := tsa.Result{Status: tsa.StatusGranted, Fail: tsa.FailNone, Info: info}
			if err != nil {
				res = tsa.Result{Status: tsa.StatusRejection, Fail: tsa.FailSystemFailure, Cause: err}
			}
			ss.s.observeTSA(ctx, "cades", res)
			if err != nil {
				return nil, err
			}
			stamped = info
			return []signer.Attribute{{Type: ParseOID(signer.OIDSignatureTimeStampToken), Values: [][]byte{tok}}}, nil
		}
	}
	sig, err := signer.SignDigest(digest, b.key, b.v.Chain, opts)
	if err != nil {
		return nil, nil, err
	}
	var at *timestamppb.Timestamp
	if stamped != nil {
		at = timestamppb.New(stamped.GenTime)
	}
	return sig, at, nil
}

// digestJob is one request's digests, their response and their item
// lines; first is the number of items of the call before these.
type digestJob struct {
	digests [][]byte
	first   int
	resp    *pecetv1.SignDigestsResponse
	items   []audit.Event
}

func newDigestJob(ctx context.Context, b *digestBatch, digests [][]byte, first int) *digestJob {
	return &digestJob{digests: digests, first: first, items: make([]audit.Event, len(digests)),
		resp: &pecetv1.SignDigestsResponse{Results: make([]*pecetv1.SignDigestResult, len(digests)), Key: b.v.Alias, Version: uint32(b.v.Version),
			SigningTime: timestamppb.New(b.opts.SigningTime), Batch: recordOf(ctx).call, FirstItem: uint64(first)}}
}

// signItem signs item i of a job into its result and its item line.
func (ss *signService) signItem(ctx context.Context, b *digestBatch, j *digestJob, i int) {
	var sig []byte
	var at *timestamppb.Timestamp
	err := ss.s.runItem(ctx, func() (err error) {
		sig, at, err = ss.signOne(ctx, b, j.digests[i])
		return err
	})
	if err != nil {
		ss.s.logItemErr(ctx, err)
	}
	j.resp.Results[i] = &pecetv1.SignDigestResult{Status: itemStatus(err), Signature: sig, TimestampTime: at}
	j.items[i] = itemLine(recordOf(ctx), j.first+i+1, b.v.Alias, b.v.Version, j.digests[i], err)
}

// logItemErr logs an item's failure that is no status of its own (its
// cause is for the log only, as for a single call).
func (s *Server) logItemErr(ctx context.Context, err error) {
	if _, isStatus := status.FromError(err); !isStatus && !errors.Is(err, envelope.ErrDecrypt) {
		s.d.Log.WarnContext(ctx, "batch item failed", "caller", identityOf(authz.CallerFrom(ctx)), "err", err)
	}
}

func (ss *signService) SignDigests(ctx context.Context, req *pecetv1.SignDigestsRequest) (*pecetv1.SignDigestsResponse, error) {
	if len(req.GetDigests()) == 0 {
		return nil, grpcerr.InvalidArgument("digests is empty: nothing to sign")
	}
	b, err := ss.prepareDigests(ctx, req)
	if err != nil {
		return nil, err
	}
	j := newDigestJob(ctx, b, req.GetDigests(), 0)
	ss.s.forEach(len(j.digests), make(chan struct{}, ss.s.workers()), func(i int) { ss.signItem(ctx, b, j, i) })
	recordOf(ctx).addItems(j.items)
	return j.resp, nil
}

func (svc *timestampService) TimestampBatch(ctx context.Context, req *pecetv1.TimestampBatchRequest) (*pecetv1.TimestampBatchResponse, error) {
	reqs := req.GetRequests()
	if len(reqs) == 0 {
		return nil, grpcerr.InvalidArgument("requests is empty: nothing to time-stamp")
	}
	if len(reqs) > MaxTimestampBatch {
		return nil, grpcerr.InvalidArgument(fmt.Sprintf("%d requests: at most %d per call", len(reqs), MaxTimestampBatch))
	}
	authority := svc.s.live(ctx).TSA
	if authority == nil {
		return nil, tsa.ErrNoTSA
	}
	rec := recordOf(ctx)
	resp := &pecetv1.TimestampBatchResponse{Results: make([]*pecetv1.TimestampBatchResult, len(reqs)), Batch: rec.call}
	items := make([]audit.Event, len(reqs))
	svc.s.forEach(len(reqs), make(chan struct{}, svc.s.workers()), func(i int) {
		var out *pecetv1.TimestampResponse
		err := svc.s.runItem(ctx, func() (err error) {
			out, err = svc.stamp(ctx, authority, reqs[i])
			return err
		})
		if err != nil {
			svc.s.logItemErr(ctx, err)
		}
		resp.Results[i] = &pecetv1.TimestampBatchResult{Status: itemStatus(err), Response: out}
		items[i] = itemLine(rec, i+1, "", 0, reqs[i].GetDigest(), err)
	})
	rec.addItems(items)
	return resp, nil
}

func (es *envelopeService) DecryptBatch(ctx context.Context, req *pecetv1.DecryptBatchRequest) (*pecetv1.DecryptBatchResponse, error) {
	msgs := req.GetEnveloped()
	if len(msgs) == 0 {
		return nil, grpcerr.InvalidArgument("enveloped is empty: nothing to decrypt")
	}
	if len(msgs) > MaxDecryptBatch {
		return nil, grpcerr.InvalidArgument(fmt.Sprintf("%d messages: at most %d per call", len(msgs), MaxDecryptBatch))
	}
	for i, m := range msgs {
		if len(m) > MaxDecryptBatchItem {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("message %d has %d bytes: at most %d (64 KiB) each; use Decrypt or DecryptStream", i, len(m), MaxDecryptBatchItem))
		}
	}
	caller := authz.CallerFrom(ctx)
	if a := req.GetKey(); a != "" && !caller.MayUseKey(a) {
		return nil, authz.ErrDenied
	}
	find, err := es.finder(ctx, req.GetKey())
	if err != nil {
		return nil, err
	}
	rec := recordOf(ctx)
	resp := &pecetv1.DecryptBatchResponse{Results: make([]*pecetv1.DecryptBatchResult, len(msgs)), Batch: rec.call}
	items := make([]audit.Event, len(msgs))
	es.s.forEach(len(msgs), make(chan struct{}, es.s.workers()), func(i int) {
		var out *pecetv1.DecryptResponse
		var tk triedKey
		err := es.s.runItem(ctx, func() (err error) {
			out, err = es.decryptOne(context.WithValue(ctx, triedKeyKey{}, &tk), find, msgs[i])
			return err
		})
		// The line names the key version the message was tried with, a
		// failed one too, or none (no key, version 0) when no key was
		// reached (docs/operations.md "Logs and the audit log").
		alias, version := tk.alias, tk.version
		if out != nil {
			alias, version = out.GetKey(), int(out.GetVersion())
		}
		if errors.Is(err, envelope.ErrDecrypt) {
			// As Decrypt: that it failed, never why.
			es.s.d.Log.InfoContext(ctx, "decryption failed", "caller", caller.Identity, "item", i+1)
		} else if err != nil {
			es.s.logItemErr(ctx, err)
		}
		resp.Results[i] = &pecetv1.DecryptBatchResult{Status: itemStatus(err), Response: out}
		items[i] = itemLine(rec, i+1, alias, version, msgs[i], err)
	})
	rec.addItems(items)
	return resp, nil
}

// triedKey is the key version a DecryptBatch item's message matched,
// noted by the finder in the item's context: the call's record holds one
// key for all items, so each item keeps its own for its line.
type triedKey struct {
	alias   string
	version int
}

type triedKeyKey struct{}

// noteTried records the key version a message was tried with, when ctx is
// a DecryptBatch item's.
func noteTried(ctx context.Context, alias string, version int) {
	if t, ok := ctx.Value(triedKeyKey{}).(*triedKey); ok {
		t.alias, t.version = alias, version
	}
}

// decryptOne decrypts one message of a batch as Decrypt does.
func (es *envelopeService) decryptOne(ctx context.Context, find envelope.Finder, msg []byte) (*pecetv1.DecryptResponse, error) {
	if len(msg) == 0 {
		return nil, grpcerr.InvalidArgument("enveloped is empty")
	}
	m, err := envelope.Parse(msg, es.s.d.Envelope)
	if err != nil {
		return nil, err
	}
	res, err := m.Decrypt(ctx, find, envelope.DecryptOptions{OAEP: es.s.d.OAEP})
	if err != nil {
		return nil, err
	}
	v := res.Key.(*keystore.KeyDecrypter).Version()
	return &pecetv1.DecryptResponse{Data: res.Plaintext, Key: v.Alias, Version: uint32(v.Version),
		Cipher: cipherProto(res.Cipher), KeyTransport: transportProto(res.KeyTransport)}, nil
}
