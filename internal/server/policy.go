package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/report"
)

// Policies is what the server needs of the policy engine besides
// Validate; *policy.Engine implements it.
type Policies interface {
	Has(name string) bool
	Policies(at time.Time) []policy.PolicyInfo
	// CheckOverrides refuses per-call overrides the policy does not allow
	// (*policy.OverrideError).
	CheckOverrides(r policy.Request) error
}

// maxRequestCerts bounds the chain and CRLs in one request: a Czech
// qualified chain has 3 or 4; a request with thousands is an attack on path
// building. Anchors may be many more (the Czech trusted list alone has 71
// PostSignum certificates): anchors are indexed by subject, and the work
// budget (policy.DefaultLimits) bounds what any request costs, whatever it
// carries (docs/security.md "Work budget per verification"). Lists of
// anchors belong in server-side policies all the same.
const (
	maxRequestCerts   = 64
	maxRequestAnchors = 1024
	maxRequestCRLs    = 16
)

type policyService struct {
	pecetv1.UnimplementedPolicyServiceServer
	s *Server
}

var purposes = map[pecetv1.Purpose]policy.Purpose{
	pecetv1.Purpose_PURPOSE_UNSPECIFIED: policy.PurposeAny,
	pecetv1.Purpose_ANY:                 policy.PurposeAny,
	pecetv1.Purpose_SIGNING:             policy.PurposeSigning,
	pecetv1.Purpose_ENCRYPTION:          policy.PurposeEncryption,
	pecetv1.Purpose_TIMESTAMPING:        policy.PurposeTimestamping,
}

var revocationModes = map[pecetv1.RevocationMode]policy.RevocationMode{
	pecetv1.RevocationMode_REVOCATION_MODE_UNSPECIFIED: "",
	pecetv1.RevocationMode_REQUIRE:                     policy.RevocationRequire,
	pecetv1.RevocationMode_PREFER:                      policy.RevocationPrefer,
	pecetv1.RevocationMode_OFF:                         policy.RevocationOff,
}

// policyRequest checks and converts the policy inputs shared by
// ValidateCertificate and Verify. r.Context carries the call's work budget
// (policy.WithBudget), charged with the bytes parsed here; the handler
// returns Server.budgetErr after validating.
func (s *Server) policyRequest(ctx context.Context, name string, anchors, crls [][]byte, mode pecetv1.RevocationMode) (policy.Request, error) {
	budget := policy.NewBudget(ctx, policy.DefaultLimits)
	r := policy.Request{Policy: name, Context: policy.WithBudget(ctx, budget)}
	if ps := s.live(ctx).Policies; ps != nil && !ps.Has(name) {
		return r, fmt.Errorf("%w: %q", policy.ErrUnknownPolicy, name)
	}
	m, ok := revocationModes[mode]
	if !ok {
		return r, grpcerr.InvalidArgument("unknown revocation mode: use REQUIRE, PREFER or OFF")
	}
	r.Revocation = m
	if ps := s.live(ctx).Policies; ps != nil {
		// Before anything is parsed: only the counts matter here.
		probe := policy.Request{Policy: name, Revocation: m, Anchors: make([]*x509.Certificate, len(anchors)), CRLs: make([]*policy.CRL, len(crls))}
		var oe *policy.OverrideError
		if err := ps.CheckOverrides(probe); errors.As(err, &oe) {
			return r, grpcerr.PermissionDenied(oe.Error())
		} else if err != nil {
			return r, err
		}
	}
	if len(anchors) > maxRequestAnchors {
		return r, grpcerr.InvalidArgument(fmt.Sprintf("too many anchors: at most %d; configure a trust list in a server-side policy", maxRequestAnchors))
	}
	for _, der := range anchors {
		if err := budget.Bytes(len(der)); err != nil {
			return r, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return r, grpcerr.InvalidArgument("an anchor is not a DER X.509 certificate")
		}
		r.Anchors = append(r.Anchors, c)
	}
	if len(crls) > maxRequestCRLs {
		return r, grpcerr.InvalidArgument(fmt.Sprintf("too many CRLs: at most %d", maxRequestCRLs))
	}
	for i, der := range crls {
		if err := budget.Bytes(len(der)); err != nil {
			return r, err
		}
		crl, err := policy.ParseCRL(der)
		if err != nil {
			return r, fmt.Errorf("crls[%d]: %w", i, err)
		}
		r.CRLs = append(r.CRLs, crl)
	}
	return r, nil
}

func (ps *policyService) ValidateCertificate(ctx context.Context, req *pecetv1.ValidateCertificateRequest) (*pecetv1.ValidateCertificateResponse, error) {
	chain := req.GetChain()
	if len(chain) == 0 {
		return nil, grpcerr.InvalidArgument("chain is empty: send the certificate to validate first")
	}
	if len(chain) > maxRequestCerts {
		return nil, grpcerr.InvalidArgument(fmt.Sprintf("chain too long: at most %d certificates", maxRequestCerts))
	}
	purpose, ok := purposes[req.GetPurpose()]
	if !ok {
		return nil, grpcerr.InvalidArgument("unknown purpose: use SIGNING, ENCRYPTION, TIMESTAMPING or ANY")
	}
	r, err := ps.s.policyRequest(ctx, req.GetPolicy(), req.GetAnchors(), req.GetCrls(), req.GetRevocation())
	if errors.Is(err, policy.ErrMalformedCRL) {
		// A CRL pecet cannot read is a verdict about the input, not a
		// usage error (docs/security.md "Revocation").
		return formatFailure(ctx, ps.s, req, err.Error())
	}
	if err != nil {
		return nil, err
	}
	for i, der := range chain {
		if err := policy.BudgetFrom(r.Context).Bytes(len(der)); err != nil {
			return nil, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			// Go's parser refuses some certificates other validators read
			// (negative serials, relative distribution point names): that
			// is a verdict, INVALID (FORMAT_FAILURE), never accepted.
			return formatFailure(ctx, ps.s, req, fmt.Sprintf("chain[%d] cannot be parsed as an X.509 certificate: %v", i, err))
		}
		if i == 0 {
			r.Leaf = c
		} else {
			r.Intermediates = append(r.Intermediates, c)
		}
	}
	r.Purpose = purpose
	if req.GetAt() != nil {
		if err := req.GetAt().CheckValid(); err != nil {
			return nil, grpcerr.InvalidArgument("at is not a valid time")
		}
		r.At = req.GetAt().AsTime()
	}
	v := ps.s.live(ctx).Validator.Validate(r)
	if err := ps.s.budgetErr(r.Context); err != nil {
		return nil, err
	}
	return certificateResponse(req, v)
}

// certificateResponse wraps a verdict with, when asked, its validation
// report (docs/api.md "Validation reports"); the request's certificates
// are named as validation objects even when no path was built.
func certificateResponse(req *pecetv1.ValidateCertificateRequest, v policy.Verdict) (*pecetv1.ValidateCertificateResponse, error) {
	resp := &pecetv1.ValidateCertificateResponse{Verdict: verdictProto(v)}
	if req.GetReport() {
		var err error
		resp.Report, err = report.Write(report.Input{Verdict: v, AtProvided: req.GetAt() != nil, Extra: req.GetChain()})
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// formatFailure is the verdict on input that cannot be parsed.
func formatFailure(ctx context.Context, s *Server, req *pecetv1.ValidateCertificateRequest, msg string) (*pecetv1.ValidateCertificateResponse, error) {
	name := req.GetPolicy()
	v := policy.Verdict{Status: policy.Invalid, Policy: name, ValidatedAt: s.d.Now()}
	if v.Policy == "" {
		if d, ok := s.live(ctx).Policies.(interface{ Default() string }); ok {
			v.Policy = d.Default()
		}
	}
	v.Add(policy.Invalid, policy.CodeFormatFailure, msg)
	return certificateResponse(req, v)
}

// budgetErr is the call's refusal when its work budget ran out or its
// deadline passed while validating: a verdict cut short says nothing
// (docs/security.md "Work budget per verification"). The work done is
// logged, so an operator can tell an attack from a chain that needs more.
func (s *Server) budgetErr(ctx context.Context) error {
	b := policy.BudgetFrom(ctx)
	err := b.Err()
	if errors.Is(err, policy.ErrWorkBudget) {
		n := b.Counts()
		s.d.Log.Warn("verification stopped at the work budget", "limit", err.Error(),
			"signature_checks", n.SignatureChecks, "signature_cost", n.SignatureCost, "cached_checks", n.CachedChecks,
			"paths", n.Paths, "steps", n.Steps, "bytes", n.Bytes)
	}
	return err
}

func (ps *policyService) ListPolicies(ctx context.Context, _ *pecetv1.ListPoliciesRequest) (*pecetv1.ListPoliciesResponse, error) {
	out := &pecetv1.ListPoliciesResponse{}
	pols := ps.s.live(ctx).Policies
	if pols == nil {
		return out, nil
	}
	for _, p := range pols.Policies(ps.s.d.Now()) {
		pi := &pecetv1.PolicyInfo{Name: p.Name, Description: p.Description, Default: p.Default, Revocation: string(p.Revocation), Qualified: p.Qualified,
			Algorithms: p.Algorithms}
		for _, o := range p.AllowOverrides {
			pi.AllowedOverrides = append(pi.AllowedOverrides, string(o))
		}
		for _, a := range p.Anchors {
			pi.Anchors = append(pi.Anchors, &pecetv1.TrustAnchor{Subject: a.Subject, Source: a.Source, Certificate: a.Cert.Raw})
		}
		if l := p.TrustedList; l != nil {
			pi.TrustedListSequence, pi.TrustedListTerritory = l.SequenceNumber, l.Territory
			if !l.IssueDate.IsZero() {
				pi.TrustedListIssued = timestamppb.New(l.IssueDate)
			}
			if !l.NextUpdate.IsZero() {
				pi.TrustedListNextUpdate = timestamppb.New(l.NextUpdate)
			}
		}
		out.Policies = append(out.Policies, pi)
	}
	return out, nil
}
