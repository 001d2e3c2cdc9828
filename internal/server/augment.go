package server

import (
	"context"
	"crypto"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/cades"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/tsa"
)

var cadesLevels = map[pecetv1.CadesLevel]cades.Level{
	pecetv1.CadesLevel_CADES_LEVEL_T:   cades.LevelT,
	pecetv1.CadesLevel_CADES_LEVEL_LT:  cades.LevelLT,
	pecetv1.CadesLevel_CADES_LEVEL_LTA: cades.LevelLTA,
}

// Augment raises a signature to CAdES baseline T, LT or LTA with this
// process's TSA (docs/archive.md "CAdES augmentation"; the role choice is
// in docs/security.md "CAdES augmentation").
func (ss *signService) Augment(ctx context.Context, req *pecetv1.AugmentRequest) (*pecetv1.AugmentResponse, error) {
	if len(req.GetSignature()) == 0 {
		return nil, grpcerr.InvalidArgument("signature is empty")
	}
	level, ok := cadesLevels[req.GetLevel()]
	if !ok {
		return nil, grpcerr.InvalidArgument("level is required: T, LT or LTA")
	}
	// One configuration for the whole call: a reload in between must not
	// pair one configuration's TSA with another's validator.
	lv := ss.s.live(ctx)
	authority := lv.TSA
	if authority == nil {
		return nil, tsa.ErrNoTSA
	}
	preq, err := ss.s.policyRequest(ctx, req.GetPolicy(), nil, req.GetCrls(), pecetv1.RevocationMode_REVOCATION_MODE_UNSPECIFIED)
	if err != nil {
		return nil, err
	}
	vo := cades.VerifyOptions{TSACertificates: tsaCertificates(ctx, lv)}
	vo.Validator, vo.Now, vo.Policy, vo.Limits = lv.Validator, ss.s.d.Now, preq, ss.s.d.CMSLimits
	switch d := req.GetDetached().(type) {
	case *pecetv1.AugmentRequest_Content:
		vo.Content = d.Content
	case *pecetv1.AugmentRequest_ContentDigest:
		if len(d.ContentDigest) != crypto.SHA256.Size() {
			return nil, grpcerr.InvalidArgument("content_digest must be a SHA-256 digest (32 bytes)")
		}
		vo.Digest, vo.DigestHash = d.ContentDigest, crypto.SHA256
	}
	stamp := func(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, error) {
		tok, info, err := authority.Token(ctx, digest, h)
		res := tsa.Result{Status: tsa.StatusGranted, Fail: tsa.FailNone, Info: info}
		if err != nil {
			res = tsa.Result{Status: tsa.StatusRejection, Fail: tsa.FailSystemFailure, Cause: err}
		}
		ss.s.observeTSA(ctx, "augment", res)
		return tok, err
	}
	ao := cades.AugmentOptions{Level: level, Stamp: stamp, Verify: vo}
	if level != cades.LevelT {
		// The TSA's certificate is judged before a signature time-stamp
		// is asked for (docs/archive.md "The order"); without it, with
		// the token only.
		if _, chain, err := authority.KeySource()(ctx); err == nil {
			ao.StamperChain = chain
		}
	}
	res, err := cades.Augment(ctx, req.GetSignature(), ao)
	if err != nil {
		return nil, err
	}
	if err := ss.s.budgetErr(preq.Context); err != nil {
		return nil, err
	}
	out := &pecetv1.AugmentResponse{Signature: res.Signature, Level: string(res.Level), Added: res.Added}
	if res.Verdict.Status != "" {
		out.Verdict = verdictProto(res.Verdict)
	}
	return out, nil
}

// levelFields fills VerifyResponse's CAdES fields.
func levelFields(resp *pecetv1.VerifyResponse, r cades.Result) {
	resp.SignatureLevel = string(r.Level)
	if !r.POETime.IsZero() {
		resp.PoeTime = timestamppb.New(r.POETime)
	}
	if !r.ArchiveTime.IsZero() {
		resp.ArchiveTime = timestamppb.New(r.ArchiveTime)
	}
}
