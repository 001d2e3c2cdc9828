package server

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/ers"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// Limits of the ArchiveService (the proto comments and docs/archive.md
// give them); each is checked before any hashing or time-stamping.
const (
	// maxSealDigests bounds one Seal request.
	maxSealDigests = 100_000
	// maxArchiveBatch bounds a SealStream or Renew batch: the server keeps
	// about two hashes per document (the tree), 128 MiB at this bound
	// for SHA-512.
	maxArchiveBatch = 1_000_000
	// maxArchiveName bounds one document name of a Seal request.
	maxArchiveName = 256
	// archiveChunk is the most records (or renewals) one response carries:
	// each carries the token, a few KiB, so a response stays well under
	// the message limit.
	archiveChunk = 1000
)

type archiveService struct {
	pecetv1.UnimplementedArchiveServiceServer
	s *Server
}

// stamp has the tree's root time-stamped by the TSA of this server, counts
// it, and records the batch (root and count) for the call's audit end
// line: one line per batch, never per document.
func (as *archiveService) stamp(ctx context.Context, t *ers.Tree, count int, op string) ([]byte, *tsa.TSTInfo, error) {
	authority := as.s.live(ctx).TSA
	if authority == nil {
		return nil, nil, tsa.ErrNoTSA
	}
	root := t.Root()
	tok, info, err := authority.Token(ctx, root, t.Hash())
	res := tsa.Result{Status: tsa.StatusGranted, Fail: tsa.FailNone, Info: info}
	if err != nil {
		res = tsa.Result{Status: tsa.StatusRejection, Fail: tsa.FailSystemFailure, Cause: err}
	}
	as.s.observeTSA(ctx, "archive", res)
	if err != nil {
		return nil, nil, err
	}
	as.s.d.Metrics.ArchiveDocuments.WithLabelValues(op).Add(float64(count))
	auditArchive(ctx, fmt.Sprintf("root=%s count=%d", hex.EncodeToString(root), count))
	return tok, info, nil
}

// checkDigest refuses a digest of the wrong length, naming it.
func checkDigest(i int, d []byte, h crypto.Hash) error {
	if len(d) != h.Size() {
		return grpcerr.InvalidArgument(fmt.Sprintf("digest %d has %d bytes; %v digests have %d", i, len(d), h, h.Size()))
	}
	return nil
}

// Seal: see the proto.
func (as *archiveService) Seal(req *pecetv1.SealRequest, stream pecetv1.ArchiveService_SealServer) error {
	h, err := hashOf(req.GetHash())
	if err != nil {
		return err
	}
	ds, names := req.GetDigests(), req.GetNames()
	switch {
	case len(ds) == 0:
		return grpcerr.InvalidArgument("digests: at least one document digest is required")
	case len(ds) > maxSealDigests:
		return grpcerr.InvalidArgument(fmt.Sprintf("digests: %d, at most %d per Seal; use SealStream (up to %d)", len(ds), maxSealDigests, maxArchiveBatch))
	case len(names) != 0 && len(names) != len(ds):
		return grpcerr.InvalidArgument(fmt.Sprintf("names: %d for %d digests; give none or one per digest", len(names), len(ds)))
	}
	for i, n := range names {
		if len(n) > maxArchiveName {
			return grpcerr.InvalidArgument(fmt.Sprintf("names: name %d has %d bytes, at most %d", i, len(n), maxArchiveName))
		}
	}
	flat := make([]byte, 0, len(ds)*h.Size())
	for i, d := range ds {
		if err := checkDigest(i, d, h); err != nil {
			return err
		}
		flat = append(flat, d...)
	}
	return as.seal(stream, flat, h, names)
}

// SealStream: see the proto.
func (as *archiveService) SealStream(stream pecetv1.ArchiveService_SealStreamServer) error {
	first, err := recvFirst(stream.Recv)
	if err != nil {
		return err
	}
	h, err := hashOf(first.GetHash())
	if err != nil {
		return err
	}
	var flat []byte
	n := 0
	for req := first; ; {
		if req != first && req.GetHash() != pecetv1.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED && req.GetHash() != first.GetHash() {
			return grpcerr.InvalidArgument("hash: only the first request names it")
		}
		if n+len(req.GetDigests()) > maxArchiveBatch {
			return grpcerr.InvalidArgument(fmt.Sprintf("digests: more than %d in one SealStream (the limit); split the batch", maxArchiveBatch))
		}
		for _, d := range req.GetDigests() {
			if err := checkDigest(n, d, h); err != nil {
				return err
			}
			flat = append(flat, d...)
			n++
		}
		if req, err = stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
	}
	if n == 0 {
		return grpcerr.InvalidArgument("digests: at least one document digest is required")
	}
	return as.seal(stream, flat, h, nil)
}

func (as *archiveService) seal(stream interface {
	Send(*pecetv1.SealResponse) error
	Context() context.Context
}, flat []byte, h crypto.Hash, names []string) error {
	t, err := ers.NewTreeFlat(flat, h)
	if err != nil {
		return err
	}
	tok, info, err := as.stamp(stream.Context(), t, t.Len(), "seal")
	if err != nil {
		return err
	}
	n := t.Len()
	for from := 0; from < n; from += archiveChunk {
		to := min(from+archiveChunk, n)
		resp := &pecetv1.SealResponse{FirstIndex: uint32(from), Root: t.Root(), GenTime: timestamppb.New(info.GenTime), Count: uint32(n)}
		for i := from; i < to; i++ {
			rec, err := t.Record(i, tok)
			if err != nil {
				return err
			}
			resp.Records = append(resp.Records, rec)
		}
		if names != nil {
			resp.Names = names[from:to]
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// Renew: see the proto. The records are read, their leaves kept (at most
// one hash each, and an index), and dropped; the answer is each record's
// new ArchiveTimeStamp.
func (as *archiveService) Renew(stream pecetv1.ArchiveService_RenewServer) error {
	first, err := recvFirst(stream.Recv)
	if err != nil {
		return err
	}
	mode := first.GetMode()
	var h crypto.Hash
	switch mode {
	case pecetv1.RenewRequest_TIMESTAMP:
		if first.GetHash() != pecetv1.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED {
			return grpcerr.InvalidArgument("hash: a TIMESTAMP renewal keeps each record's hash; name one only for HASH_TREE")
		}
	case pecetv1.RenewRequest_HASH_TREE:
		if h, err = hashOf(first.GetHash()); err != nil {
			return err
		}
	default:
		return grpcerr.InvalidArgument("mode: TIMESTAMP or HASH_TREE")
	}
	// The distinct leaves, and each record's: the records of one seal batch
	// share their token, so a time-stamp renewal of a batch is one leaf.
	// index is -1 for a record not renewed; checkOf points into checks,
	// one per distinct last token (docs/archive.md "Renew in time").
	var flat []byte
	seen := map[string]int{}
	var index []int
	var checkOf []int32
	var checks []renewalCheck
	judged := map[[32]byte]int32{}
	renewAt := as.s.d.Now()
	lv := as.s.live(stream.Context())
	window := time.Duration(lv.KeyPolicy.ArchiveRenewalWarningDays) * 24 * time.Hour
	certs := tsaCertificates(stream.Context(), lv)
	n, renewed := 0, 0
	for req := first; ; {
		if req != first && (req.GetMode() != pecetv1.RenewRequest_MODE_UNSPECIFIED || req.GetHash() != pecetv1.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED) {
			return grpcerr.InvalidArgument("mode and hash: only the first request names them")
		}
		recs := req.GetRecords()
		if n+len(recs) > maxArchiveBatch {
			return grpcerr.InvalidArgument(fmt.Sprintf("records: more than %d in one Renew (the limit); split the batch", maxArchiveBatch))
		}
		if mode == pecetv1.RenewRequest_HASH_TREE && len(req.GetDigests()) != len(recs) {
			return grpcerr.InvalidArgument(fmt.Sprintf("digests: %d for %d records in one request; HASH_TREE needs one per record", len(req.GetDigests()), len(recs)))
		}
		if mode == pecetv1.RenewRequest_TIMESTAMP && len(req.GetDigests()) != 0 {
			return grpcerr.InvalidArgument("digests: a TIMESTAMP renewal takes none")
		}
		for j, rec := range recs {
			var leaf []byte
			r, err := ers.Parse(rec)
			switch {
			case err != nil:
			case mode == pecetv1.RenewRequest_HASH_TREE:
				if err := checkDigest(n, req.GetDigests()[j], h); err != nil {
					return err
				}
				leaf, err = r.HashTreeLeaf(req.GetDigests()[j], h)
			default:
				var rh crypto.Hash
				leaf, rh, err = r.TimeStampLeaf()
				switch {
				case err != nil:
				case n == 0:
					h = rh
				case rh != h:
					return grpcerr.InvalidArgument(fmt.Sprintf("records: record %d is under %v, record 0 under %v; renew them in separate calls", n, rh, h))
				}
			}
			if err != nil {
				return grpcerr.InvalidArgument(fmt.Sprintf("records: record %d: %v", n, err))
			}
			// The last token, judged once however many records share it.
			last := r.LastTimeStamp()
			key := sha256.Sum256(last)
			c, ok := judged[key]
			if !ok {
				rc, err := as.checkRenewal(stream.Context(), lv, certs, last, renewAt, window)
				if err != nil {
					return grpcerr.InvalidArgument(fmt.Sprintf("records: record %d: its last time-stamp: %v", n, err))
				}
				c = int32(len(checks)) //nolint:gosec // at most maxArchiveBatch distinct tokens
				checks = append(checks, rc)
				judged[key] = c
			}
			checkOf = append(checkOf, c)
			if checks[c].refuse != "" {
				index = append(index, -1)
				n++
				continue
			}
			renewed++
			// HASH_TREE leaves differ (each binds its document), so only
			// TIMESTAMP leaves are looked up.
			k, ok := 0, false
			if mode == pecetv1.RenewRequest_TIMESTAMP {
				k, ok = seen[string(leaf)]
			}
			if !ok {
				k = len(flat) / h.Size()
				if mode == pecetv1.RenewRequest_TIMESTAMP {
					seen[string(leaf)] = k
				}
				flat = append(flat, leaf...)
			}
			index = append(index, k)
			n++
		}
		if req, err = stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
	}
	if n == 0 {
		return grpcerr.InvalidArgument("records: at least one record is required")
	}
	// No time-stamp when every record was refused: the answer is their
	// statuses alone.
	var t *ers.Tree
	var tok []byte
	var genTime *timestamppb.Timestamp
	if renewed > 0 {
		if t, err = ers.NewTreeFlat(flat, h); err != nil {
			return err
		}
		var info *tsa.TSTInfo
		if tok, info, err = as.stamp(stream.Context(), t, renewed, "renew"); err != nil {
			return err
		}
		genTime = timestamppb.New(info.GenTime)
	}
	for from := 0; from < n; from += archiveChunk {
		to := min(from+archiveChunk, n)
		resp := &pecetv1.RenewResponse{FirstIndex: uint32(from), GenTime: genTime, Count: uint32(n)}
		if t != nil {
			resp.Root = t.Root()
		}
		for i := from; i < to; i++ {
			c := checks[checkOf[i]]
			if index[i] < 0 {
				resp.ArchiveTimeStamps = append(resp.ArchiveTimeStamps, nil)
				resp.Statuses = append(resp.Statuses, &pecetv1.ItemStatus{Code: uint32(codes.FailedPrecondition), Message: fmt.Sprintf("record %d: %s", i, c.refuse)})
				resp.Warnings = append(resp.Warnings, "")
				continue
			}
			ats, err := t.StampDER(index[i], tok)
			if err != nil {
				return err
			}
			resp.ArchiveTimeStamps = append(resp.ArchiveTimeStamps, ats)
			resp.Statuses = append(resp.Statuses, &pecetv1.ItemStatus{})
			resp.Warnings = append(resp.Warnings, c.warn)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

// renewalCheck is what a Renew found of a record's last archive
// time-stamp at the renewal time: refuse says why it is not renewed, warn
// why it should be renewed soon (docs/archive.md "Renew in time").
type renewalCheck struct{ refuse, warn string }

// refusedCodes are the verdict reasons that make a last time-stamp
// worthless at the renewal time and that no later renewal can repair: the
// TSA certificate expired or was revoked, or an algorithm left the
// policy's suite. A new time-stamp over it would prove only that a token
// no longer valid existed. Other reasons (an unknown TSA, revocation
// status unknown) may be settled by the verifier: those records are
// renewed with a warning.
var refusedCodes = map[policy.Code]string{
	policy.CodeExpired:                "a renewal must happen before the TSA certificate expires",
	tsa.CodeOutOfBoundsNoPOE:          "a renewal must happen before the TSA certificate expires",
	policy.CodeRevoked:                "a renewal must happen before the TSA certificate is revoked",
	policy.CodeRevokedNoPOE:           "a renewal must happen before the TSA certificate is revoked",
	policy.CodeWeakAlgorithm:          "a renewal must happen while its algorithms are in the policy's suite",
	policy.CodeCryptoConstraintsNoPOE: "a renewal must happen while its algorithms are in the policy's suite",
}

// checkRenewal judges the last archive time-stamp token of a record under
// the default policy at the renewal time at, as VerifyRecord judges it
// later at the new time-stamp's genTime (each call has its own work
// budget). Only a token that cannot be read is an error.
func (as *archiveService) checkRenewal(ctx context.Context, lv *Live, certs []*x509.Certificate, token []byte, at time.Time, window time.Duration) (renewalCheck, error) {
	tok, err := tsa.ReadToken(token)
	if err != nil {
		return renewalCheck{}, err
	}
	preq, err := as.s.policyRequest(ctx, "", nil, nil, pecetv1.RevocationMode_REVOCATION_MODE_UNSPECIFIED)
	if err != nil {
		return renewalCheck{}, err
	}
	v, err := tok.Verify(tsa.VerifyOptions{Validator: lv.Validator, Policy: preq, TSACertificates: certs, NoImprint: true, At: at, Now: as.s.d.Now})
	if err != nil {
		return renewalCheck{}, err
	}
	if err := as.s.budgetErr(preq.Context); err != nil {
		return renewalCheck{}, err
	}
	var leaf *x509.Certificate
	if len(v.Chain) > 0 {
		leaf = v.Chain[0]
	}
	if v.Status == policy.Valid {
		if leaf != nil && leaf.NotAfter.Sub(at) <= window {
			return renewalCheck{warn: fmt.Sprintf("the last time-stamp's TSA certificate expires on %s (in %d days): renew before then",
				leaf.NotAfter.UTC().Format(time.RFC3339), int(leaf.NotAfter.Sub(at).Hours()/24))}, nil
		}
		return renewalCheck{}, nil
	}
	for _, r := range v.Reasons {
		must, ok := refusedCodes[r.Code]
		if !ok {
			continue
		}
		if leaf != nil && at.After(leaf.NotAfter) {
			return renewalCheck{refuse: fmt.Sprintf("the last time-stamp's TSA certificate expired on %s; a renewal must happen before that (renewal time %s)",
				leaf.NotAfter.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))}, nil
		}
		return renewalCheck{refuse: fmt.Sprintf("the last time-stamp is no longer valid (%s: %s); %s", r.Code, r.Message, must)}, nil
	}
	msg := "the last time-stamp is not valid now (" + string(v.Status)
	if len(v.Reasons) > 0 {
		msg += ": " + string(v.Reasons[0].Code) + " " + v.Reasons[0].Message
	}
	return renewalCheck{warn: msg + "); renewed, but verifying the record needs its TSA judged valid"}, nil
}

var hashProto = map[crypto.Hash]pecetv1.HashAlgorithm{
	crypto.SHA256: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256,
	crypto.SHA384: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA384,
	crypto.SHA512: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512,
}

// VerifyRecord: see the proto. Each archive time-stamp is judged as a
// signature's time-stamp is (tsa.Verify under the named policy and the
// known TSA certificates), at the time the next one proves.
func (as *archiveService) VerifyRecord(ctx context.Context, req *pecetv1.VerifyRecordRequest) (*pecetv1.VerifyRecordResponse, error) {
	if len(req.GetRecord()) == 0 {
		return nil, grpcerr.InvalidArgument("record is empty")
	}
	if len(req.GetRecord()) > ers.MaxRecordBytes {
		return nil, grpcerr.InvalidArgument(fmt.Sprintf("record: %d bytes, at most %d", len(req.GetRecord()), ers.MaxRecordBytes))
	}
	content, given := req.GetContent(), req.GetDigests()
	if (content == nil) == (len(given) == 0) {
		return nil, grpcerr.InvalidArgument("give the document's content or its digests, one of them")
	}
	if len(given) > len(hashProto) {
		return nil, grpcerr.InvalidArgument(fmt.Sprintf("digests: at most %d, one per hash", len(hashProto)))
	}
	var at time.Time
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, grpcerr.InvalidArgument("at is not a valid time")
		}
		at = req.GetAt().AsTime()
	}
	preq, err := as.s.policyRequest(ctx, req.GetPolicy(), nil, nil, req.GetRevocation())
	if err != nil {
		return nil, err
	}
	docs := map[crypto.Hash][]byte{}
	for i, d := range given {
		h, err := hashOf(d.GetHash())
		if err != nil {
			return nil, err
		}
		if _, dup := docs[h]; dup {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("digests: %v given twice", h))
		}
		if err := checkDigest(i, d.GetDigest(), h); err != nil {
			return nil, err
		}
		docs[h] = d.GetDigest()
	}
	now := as.s.d.Now()
	validatedAt := at
	if validatedAt.IsZero() {
		validatedAt = now
	}
	invalid := func(code policy.Code, msg string) *pecetv1.VerifyRecordResponse {
		return &pecetv1.VerifyRecordResponse{Verdict: verdictProto(policy.Verdict{Status: policy.Invalid, ValidatedAt: validatedAt, Policy: req.GetPolicy(),
			Reasons: []policy.Reason{{Code: code, Message: msg}}})}
	}
	r, err := ers.Parse(req.GetRecord())
	if err != nil {
		return invalid(policy.CodeMalformed, err.Error()), nil
	}
	hs, err := r.ChainHashes()
	if err != nil {
		return invalid(policy.CodeMalformed, err.Error()), nil
	}
	for k, h := range hs {
		if content != nil {
			if _, ok := docs[h]; !ok {
				d := h.New()
				d.Write(content)
				docs[h] = d.Sum(nil)
			}
		} else if _, ok := docs[h]; !ok {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("digests: the record's chain %d uses %v; give the document's %v digest too, or its content", k, h, h))
		}
	}
	lv := as.s.live(ctx)
	certs := tsaCertificates(ctx, lv)
	// The token's own verdict, when the judge refuses one: the response
	// carries its status and reasons.
	var refused *policy.Verdict
	// Each token as the record's structure check read it (parsed once);
	// the call's work budget is checked before each, so a record of many
	// renewals stops when the budget is spent (docs/security.md "Work
	// budget per verification").
	budget := policy.BudgetFrom(preq.Context)
	judge := func(token *tsa.Token, when time.Time) (*tsa.TSTInfo, error) {
		if err := budget.Err(); err != nil {
			return nil, err
		}
		if when.IsZero() {
			when = validatedAt
		}
		v, err := token.Verify(tsa.VerifyOptions{Validator: lv.Validator, Policy: preq, TSACertificates: certs, NoImprint: true, At: when, Now: as.s.d.Now})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ers.ErrToken, err)
		}
		if v.Status != policy.Valid {
			refused = &v
			return nil, fmt.Errorf("%w: verdict %s", ers.ErrToken, v.Status)
		}
		return token.Info, nil
	}
	res, err := r.Verify(docs, judge, validatedAt)
	if berr := as.s.budgetErr(preq.Context); berr != nil {
		return nil, berr
	}
	resp := &pecetv1.VerifyRecordResponse{}
	switch {
	case err == nil:
		resp.Verdict = verdictProto(policy.Verdict{Status: policy.Valid, TimestampTime: res.Existed, ValidatedAt: validatedAt, Policy: req.GetPolicy()})
		resp.Existed = timestamppb.New(res.Existed)
	case refused != nil:
		// The token's verdict, with which time-stamp it was first.
		v := *refused
		code := policy.CodeChainInvalid
		if len(v.Reasons) > 0 {
			code = v.Reasons[0].Code
		}
		v.Reasons = append([]policy.Reason{{Code: code, Message: "an archive time-stamp: " + err.Error()}}, v.Reasons...)
		resp.Verdict = verdictProto(v)
	case errors.Is(err, ers.ErrNotCovered), errors.Is(err, ers.ErrRootMismatch), errors.Is(err, ers.ErrRenewal):
		resp = invalid(policy.CodeDigestMismatch, err.Error())
	case errors.Is(err, ers.ErrHash):
		resp = invalid(signer.CodeUnsupportedAlgorithm, err.Error())
	default:
		resp = invalid(policy.CodeMalformed, err.Error())
	}
	for _, t := range res.Stamps {
		resp.Stamps = append(resp.Stamps, timestamppb.New(t))
	}
	for _, h := range hs {
		resp.Hashes = append(resp.Hashes, hashProto[h])
	}
	return resp, nil
}
