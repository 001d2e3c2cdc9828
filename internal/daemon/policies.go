package daemon

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/policy"
)

// BuildEngine loads every configured policy (anchors, trusted lists with
// their signatures checked, CRL files, algorithm suites) into a policy
// engine. Without policies, trust.anchors make the policy "default" with
// revocation off, as before policies existed.
func BuildEngine(cfg *config.Config) (*policy.Engine, error) {
	var ps []*policy.Policy
	def := cfg.DefaultPolicy
	var maxTimeout time.Duration
	if len(cfg.Policies) == 0 {
		anchors, err := pki.ReadCertificates(cfg.Trust.Anchors...)
		if err != nil {
			return nil, fmt.Errorf("trust anchors: %w", err)
		}
		ps = append(ps, &policy.Policy{Name: "default", Description: "trust.anchors, no revocation", Anchors: anchors, Revocation: policy.RevocationOff})
		def = "default"
	}
	for name, pc := range cfg.Policies {
		p, err := buildPolicy(name, pc)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", name, err)
		}
		ps = append(ps, p)
		maxTimeout = max(maxTimeout, pc.Revocation.Timeout)
	}
	e, err := policy.NewEngine(def, ps...)
	if err != nil {
		return nil, err
	}
	e.Fetcher = &policy.Fetcher{Timeout: maxTimeout, Schemes: cfg.Fetch.Schemes, Hosts: cfg.Fetch.Hosts, MaxRedirects: cfg.Fetch.MaxRedirects}
	return e, nil
}

var keyUsageNames = map[string]x509.KeyUsage{
	"digitalSignature":  x509.KeyUsageDigitalSignature,
	"contentCommitment": x509.KeyUsageContentCommitment,
	"nonRepudiation":    x509.KeyUsageContentCommitment,
	"keyEncipherment":   x509.KeyUsageKeyEncipherment,
	"dataEncipherment":  x509.KeyUsageDataEncipherment,
	"keyAgreement":      x509.KeyUsageKeyAgreement,
}

var ekuNames = map[string]x509.ExtKeyUsage{
	"any":             x509.ExtKeyUsageAny,
	"serverAuth":      x509.ExtKeyUsageServerAuth,
	"clientAuth":      x509.ExtKeyUsageClientAuth,
	"emailProtection": x509.ExtKeyUsageEmailProtection,
	"timeStamping":    x509.ExtKeyUsageTimeStamping,
	"codeSigning":     x509.ExtKeyUsageCodeSigning,
}

var hashNames = map[string]crypto.Hash{"SHA256": crypto.SHA256, "SHA384": crypto.SHA384, "SHA512": crypto.SHA512}

func buildPolicy(name string, pc config.Policy) (*policy.Policy, error) {
	p := &policy.Policy{
		Name:                 name,
		Description:          pc.Description,
		RequiredPolicies:     pc.RequiredPolicies,
		RequiredQCStatements: pc.RequiredQCStatements,
		Revocation:           policy.RevocationMode(pc.Revocation.Mode),
		FetchCRLs:            pc.Revocation.FetchCRLs,
		OCSP:                 pc.Revocation.OCSP,
		ClockTolerance:       pc.ClockTolerance,
	}
	var err error
	if p.Anchors, err = pki.ReadCertificates(pc.Anchors...); err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	if p.Intermediates, err = pki.ReadCertificates(pc.Intermediates...); err != nil {
		return nil, fmt.Errorf("intermediates: %w", err)
	}
	if tl := pc.TrustedList; tl != nil {
		signers, err := pki.ReadCertificates(tl.Signer)
		if err != nil {
			return nil, fmt.Errorf("trusted list signer: %w", err)
		}
		data, err := pki.ReadFile(tl.File, policy.MaxTrustedListBytes)
		if err != nil {
			return nil, fmt.Errorf("trusted list: %w", err)
		}
		if p.TrustedList, err = policy.LoadTrustedList(data, signers); err != nil {
			return nil, fmt.Errorf("trusted list %s: %w", tl.File, err)
		}
		p.TrustedListGrace = tl.Grace
	}
	for _, f := range pc.Revocation.CRLs {
		data, err := pki.ReadFile(f, policy.MaxCRLBytes)
		if err != nil {
			return nil, fmt.Errorf("CRL: %w", err)
		}
		crl, err := policy.ParseCRL(data)
		if err != nil {
			return nil, fmt.Errorf("CRL %s: %w", f, err)
		}
		p.CRLs = append(p.CRLs, crl)
	}
	a := pc.Algorithms
	rules := &policy.AlgorithmRules{MinRSABits: a.MinRSABits, MinECBits: a.MinECBits}
	for _, h := range a.Hashes {
		rules.Hashes = append(rules.Hashes, hashNames[h])
	}
	if a.Suite != "" {
		data, err := pki.ReadFile(a.Suite, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("algorithm suite: %w", err)
		}
		if rules.Suite, err = policy.ParseAlgorithmSuite(data); err != nil {
			return nil, fmt.Errorf("algorithm suite %s: %w", a.Suite, err)
		}
	}
	p.Algorithms = rules
	if len(pc.Purposes) > 0 {
		p.Purposes = map[policy.Purpose]policy.PurposeRule{}
		for purpose, r := range pc.Purposes {
			var rule policy.PurposeRule
			for _, n := range r.KeyUsage {
				ku, ok := keyUsageNames[n]
				if !ok {
					return nil, fmt.Errorf("purposes.%s: unknown key usage %q", purpose, n)
				}
				rule.KeyUsage |= ku
			}
			for _, n := range r.EKU {
				eku, ok := ekuNames[n]
				if !ok {
					return nil, fmt.Errorf("purposes.%s: unknown extended key usage %q", purpose, n)
				}
				rule.EKU = append(rule.EKU, eku)
			}
			p.Purposes[policy.Purpose(purpose)] = rule
		}
	}
	return p, nil
}
