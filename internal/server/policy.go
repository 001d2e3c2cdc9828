package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

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

// maxRequestCerts bounds certificates (chain plus anchors) and CRLs in one
// request: a Czech qualified chain has 3 or 4; a request with thousands is
// an attack on path building.
const (
	maxRequestCerts = 64
	maxRequestCRLs  = 16
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
// ValidateCertificate and Verify.
func (s *Server) policyRequest(ctx context.Context, name string, anchors, crls [][]byte, mode pecetv1.RevocationMode) (policy.Request, error) {
	r := policy.Request{Policy: name, Context: ctx}
	if s.d.Policies != nil && !s.d.Policies.Has(name) {
		return r, fmt.Errorf("%w: %q", policy.ErrUnknownPolicy, name)
	}
	m, ok := revocationModes[mode]
	if !ok {
		return r, grpcerr.InvalidArgument("unknown revocation mode: use REQUIRE, PREFER or OFF")
	}
	r.Revocation = m
	if s.d.Policies != nil {
		// Before anything is parsed: only the counts matter here.
		probe := policy.Request{Policy: name, Revocation: m, Anchors: make([]*x509.Certificate, len(anchors)), CRLs: make([]*policy.CRL, len(crls))}
		var oe *policy.OverrideError
		if err := s.d.Policies.CheckOverrides(probe); errors.As(err, &oe) {
			return r, grpcerr.PermissionDenied(oe.Error())
		} else if err != nil {
			return r, err
		}
	}
	if len(anchors) > maxRequestCerts {
		return r, grpcerr.InvalidArgument(fmt.Sprintf("too many anchors: at most %d", maxRequestCerts))
	}
	for _, der := range anchors {
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
		return formatFailure(ps.s, req, err.Error())
	}
	if err != nil {
		return nil, err
	}
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			// Go's parser refuses some certificates other validators read
			// (negative serials, relative distribution point names): that
			// is a verdict, INVALID (FORMAT_FAILURE), never accepted.
			return formatFailure(ps.s, req, fmt.Sprintf("chain[%d] cannot be parsed as an X.509 certificate: %v", i, err))
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
	v := ps.s.d.Validator.Validate(r)
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
func formatFailure(s *Server, req *pecetv1.ValidateCertificateRequest, msg string) (*pecetv1.ValidateCertificateResponse, error) {
	name := req.GetPolicy()
	v := policy.Verdict{Status: policy.Invalid, Policy: name, ValidatedAt: s.d.Now()}
	if v.Policy == "" {
		if d, ok := s.d.Policies.(interface{ Default() string }); ok {
			v.Policy = d.Default()
		}
	}
	v.Add(policy.Invalid, policy.CodeFormatFailure, msg)
	return certificateResponse(req, v)
}

func (ps *policyService) ListPolicies(ctx context.Context, _ *pecetv1.ListPoliciesRequest) (*pecetv1.ListPoliciesResponse, error) {
	out := &pecetv1.ListPoliciesResponse{}
	if ps.s.d.Policies == nil {
		return out, nil
	}
	for _, p := range ps.s.d.Policies.Policies(ps.s.d.Now()) {
		pi := &pecetv1.PolicyInfo{Name: p.Name, Description: p.Description, Default: p.Default, Revocation: string(p.Revocation), Qualified: p.Qualified,
			Algorithms: p.Algorithms}
		for _, o := range p.AllowOverrides {
			pi.AllowedOverrides = append(pi.AllowedOverrides, string(o))
		}
		for _, a := range p.Anchors {
			pi.Anchors = append(pi.Anchors, &pecetv1.TrustAnchor{Subject: a.Subject, Source: a.Source, Certificate: a.Cert.Raw})
		}
		out.Policies = append(out.Policies, pi)
	}
	return out, nil
}
