package server

import (
	"context"
	"crypto"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/cades"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/report"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

type signService struct {
	pecetv1.UnimplementedSignServiceServer
	s *Server
}

// hashOf maps the API enum to a crypto.Hash; unspecified is SHA-256.
func hashOf(h pecetv1.HashAlgorithm) (crypto.Hash, error) {
	switch h {
	case pecetv1.HashAlgorithm_HASH_ALGORITHM_UNSPECIFIED, pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA256:
		return crypto.SHA256, nil
	case pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA384:
		return crypto.SHA384, nil
	case pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA512:
		return crypto.SHA512, nil
	}
	return 0, grpcerr.InvalidArgument("unknown hash algorithm: use SHA256, SHA384 or SHA512")
}

func (ss *signService) Sign(ctx context.Context, req *pecetv1.SignRequest) (*pecetv1.SignResponse, error) {
	if req.GetKey() == "" {
		return nil, grpcerr.InvalidArgument("key is required: the alias of a SIGN key")
	}
	h, err := hashOf(req.GetHash())
	if err != nil {
		return nil, err
	}
	if !authz.CallerFrom(ctx).MayUseKey(req.GetKey()) {
		return nil, authz.ErrDenied
	}
	var data, digest []byte
	switch in := req.GetInput().(type) {
	case *pecetv1.SignRequest_Data:
		if len(in.Data) == 0 {
			return nil, grpcerr.InvalidArgument("data is empty: nothing to sign")
		}
		data = in.Data
	case *pecetv1.SignRequest_Digest:
		if req.GetAttached() {
			return nil, grpcerr.InvalidArgument("attached is not possible when signing a digest: the data is not here")
		}
		if len(in.Digest) != h.Size() {
			return nil, grpcerr.InvalidArgument("digest length does not match the hash algorithm")
		}
		digest = in.Digest
	default:
		return nil, grpcerr.InvalidArgument("one of data or digest is required")
	}
	key, err := ss.s.d.Keys.Signer(ctx, req.GetKey(), int(req.GetVersion()), keystore.PurposeSign)
	if err != nil {
		return nil, err
	}
	v := key.Version()
	auditKey(ctx, v.Alias, v.Version)
	if err := ss.s.checkAdmitted(v); err != nil {
		return nil, err
	}
	opts := signer.Options{Hash: h, Attached: req.GetAttached(), SigningTime: ss.s.d.Now().UTC(), ECDSACheck: ss.s.ecdsaCheck, RSACheck: ss.s.rsaCheck}
	var stamped *tsa.TSTInfo
	if req.GetTimestamp() {
		authority := ss.s.live(ctx).TSA
		if authority == nil {
			return nil, tsa.ErrNoTSA
		}
		// CAdES-T: a token over the signature value from the TSA in this
		// process (ETSI EN 319 122-1 5.3), made once the signature is.
		opts.UnsignedAttributes = func(sigValue []byte) ([]signer.Attribute, error) {
			sum := crypto.SHA256.New()
			sum.Write(sigValue)
			tok, info, err := authority.Token(ctx, sum.Sum(nil), crypto.SHA256)
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
	var sig []byte
	if data != nil {
		sig, err = signer.Sign(data, key, v.Chain, opts)
	} else {
		sig, err = signer.SignDigest(digest, key, v.Chain, opts)
	}
	if err != nil {
		return nil, err
	}
	return &pecetv1.SignResponse{
		Signature:   sig,
		Key:         v.Alias,
		Version:     uint32(v.Version),
		SigningTime: timestamppb.New(opts.SigningTime),
		TimestampTime: func() *timestamppb.Timestamp {
			if stamped == nil {
				return nil
			}
			return timestamppb.New(stamped.GenTime)
		}(),
	}, nil
}

func (ss *signService) Verify(ctx context.Context, req *pecetv1.VerifyRequest) (*pecetv1.VerifyResponse, error) {
	if len(req.GetSignature()) == 0 {
		return nil, grpcerr.InvalidArgument("signature is empty")
	}
	preq, err := ss.s.policyRequest(ctx, req.GetPolicy(), req.GetAnchors(), req.GetCrls(), req.GetRevocation())
	if err != nil {
		return nil, err
	}
	// The signer's chain and every time-stamp's share the call's budget
	// (preq.Context).
	lv := ss.s.live(ctx) // once: the validator and the TSA certificates of one configuration
	opts := signer.VerifyOptions{Validator: lv.Validator, Now: ss.s.d.Now, Policy: preq, Limits: ss.s.d.CMSLimits}
	switch d := req.GetDetached().(type) {
	case *pecetv1.VerifyRequest_Content:
		opts.Content = d.Content
	case *pecetv1.VerifyRequest_ContentDigest:
		h, err := hashOf(req.GetDigestHash())
		if err != nil {
			return nil, err
		}
		opts.Digest, opts.DigestHash = d.ContentDigest, h
	}
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, grpcerr.InvalidArgument("at is not a valid time")
		}
		opts.At = req.GetAt().AsTime()
	}
	// Signature and archive time-stamps are judged under the signature's
	// policy and per-call anchors; the CAdES material embedded is used
	// (docs/archive.md "CAdES augmentation").
	r, err := cades.Verify(req.GetSignature(), cades.VerifyOptions{VerifyOptions: opts, TSACertificates: tsaCertificates(ctx, lv)})
	if err != nil {
		return nil, err
	}
	if err := ss.s.budgetErr(preq.Context); err != nil {
		return nil, err
	}
	// Say which content the verdict is about, and return an attached
	// signature's content: the bytes it covers (docs/security.md).
	c := r.Content
	resp := &pecetv1.VerifyResponse{
		Verdict:                verdictProto(r.Verdict),
		ContentSource:          contentSourceProto(c.Source),
		Compared:               contentSourceProto(c.Compared),
		Content:                c.Embedded,
		ContentDigest:          c.Digest,
		ContentDigestAlgorithm: c.Hash.String(),
	}
	levelFields(resp, r)
	if req.GetReport() {
		// The report names the content by its digest only (docs/api.md
		// "Validation reports").
		resp.Report, err = report.Write(report.Input{Verdict: r.Verdict, Signature: req.GetSignature(),
			DocumentDigest: c.Digest, DocumentHash: c.Hash, HashOnly: c.Source == signer.DigestGiven, AtProvided: req.GetAt() != nil})
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
}

func contentSourceProto(s signer.ContentSource) pecetv1.VerifyResponse_ContentSource {
	switch s {
	case signer.ContentEmbedded:
		return pecetv1.VerifyResponse_EMBEDDED
	case signer.ContentGiven:
		return pecetv1.VerifyResponse_GIVEN_CONTENT
	case signer.DigestGiven:
		return pecetv1.VerifyResponse_GIVEN_DIGEST
	}
	return pecetv1.VerifyResponse_CONTENT_SOURCE_UNSPECIFIED
}
