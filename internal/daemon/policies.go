package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"
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
	lists := map[string]*policy.TrustedList{}
	for name, pc := range cfg.Policies {
		if pc.TrustedList == nil {
			continue
		}
		l, err := loadTrustedList(context.Background(), *pc.TrustedList, nil)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", name, err)
		}
		lists[name] = l
	}
	return buildEngine(cfg, lists, nil, nil)
}

// loadTrustedList reads a policy's trusted list from its file or fetches it
// from its URL (within tl.Timeout and policy.MaxTrustedListBytes) and
// verifies its signature with the configured signer, or with the
// certificates the EU list of lists names for tl.Territory (tl.LOTL,
// verified with tl.LOTLSigner, through its pivots if need be;
// docs/operations.md "Trusted lists"). rt is the HTTP transport (nil: the
// default; tests give one that trusts their server).
func loadTrustedList(ctx context.Context, tl config.TrustedList, rt http.RoundTripper) (*policy.TrustedList, error) {
	timeout := tl.Timeout
	if timeout == 0 {
		timeout = config.DefaultTrustedListTimeout
	}
	client := &http.Client{Timeout: timeout, Transport: rt}
	fetch := func(ctx context.Context, url string) ([]byte, error) {
		return policy.FetchTrustedList(ctx, client, url, policy.MaxTrustedListBytes)
	}
	read := func(src string) ([]byte, error) {
		if strings.Contains(src, "://") { // FetchTrustedList refuses all but https://
			return fetch(ctx, src)
		}
		return pki.ReadFile(src, policy.MaxTrustedListBytes)
	}
	src := tl.File
	if tl.URL != "" {
		src = tl.URL
	}
	var signers []*x509.Certificate
	var err error
	if tl.LOTL != "" {
		if signers, src, err = lotlSigners(ctx, tl, read, fetch); err != nil {
			return nil, err
		}
	} else if signers, err = pki.ReadCertificates(tl.Signer); err != nil {
		return nil, fmt.Errorf("trusted list signer: %w", err)
	}
	data, err := read(src)
	if err != nil {
		return nil, fmt.Errorf("trusted list: %w", err)
	}
	l, err := policy.LoadTrustedList(data, signers)
	if err != nil {
		return nil, fmt.Errorf("trusted list %s: %w", src, err)
	}
	if tl.LOTL != "" && !strings.EqualFold(l.Territory, tl.Territory) {
		return nil, fmt.Errorf("trusted list %s: %w: its territory is %q, the LOTL pointer is for %q", src, policy.ErrTrustedList, l.Territory, tl.Territory)
	}
	return l, nil
}

// lotlSigners verifies the LOTL and returns the certificates of its
// pointer to tl.Territory's list, and where to read that list from: the
// configured file or URL, or else the pointer's location.
func lotlSigners(ctx context.Context, tl config.TrustedList, read func(string) ([]byte, error), fetch func(context.Context, string) ([]byte, error)) ([]*x509.Certificate, string, error) {
	oj, err := pki.ReadCertificates(tl.LOTLSigner)
	if err != nil {
		return nil, "", fmt.Errorf("LOTL signer: %w", err)
	}
	data, err := read(tl.LOTL)
	if err != nil {
		return nil, "", fmt.Errorf("LOTL: %w", err)
	}
	lotl, err := policy.ResolveLOTL(ctx, data, oj, fetch)
	if err != nil {
		return nil, "", fmt.Errorf("LOTL %s: %w", tl.LOTL, err)
	}
	p, err := lotl.Pointer(tl.Territory)
	if err != nil {
		return nil, "", fmt.Errorf("LOTL %s (sequence %s): %w", tl.LOTL, lotl.SequenceNumber, err)
	}
	src := tl.File
	if tl.URL != "" {
		src = tl.URL
	}
	if src == "" {
		if !strings.HasPrefix(p.Location, "https://") {
			return nil, "", fmt.Errorf("LOTL %s: %w: the list of %s is at %q, not an https:// URL: configure file or url", tl.LOTL, policy.ErrTrustedListFetch, tl.Territory, p.Location)
		}
		src = p.Location
	}
	return p.Certs, src, nil
}

// buildEngine makes the engine from cfg with the trusted lists already
// loaded (one per policy that has a trusted_list); fetcher, when not nil,
// is kept so that a reload does not empty the CRL cache.
// now is the daemon's clock (nil: time.Now): the validation time of a
// request without one, and the freshness of CRLs and OCSP responses.
func buildEngine(cfg *config.Config, lists map[string]*policy.TrustedList, fetcher *policy.Fetcher, now func() time.Time) (*policy.Engine, error) {
	var ps []*policy.Policy
	def := cfg.DefaultPolicy
	var maxTimeout time.Duration
	if len(cfg.Policies) == 0 {
		anchors, err := pki.ReadCertificates(cfg.Trust.Anchors...)
		if err != nil {
			return nil, fmt.Errorf("trust anchors: %w", err)
		}
		ps = append(ps, &policy.Policy{Name: "default", Description: "trust.anchors, no revocation", Anchors: anchors, Revocation: policy.RevocationOff,
			AllowOverrides: DefaultOverrides})
		def = "default"
	}
	for name, pc := range cfg.Policies {
		p, err := buildPolicy(name, pc, lists[name])
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
	// A reload keeps the fetcher (its CRL cache) unless its settings change.
	want := policy.Fetcher{Timeout: maxTimeout, Schemes: cfg.Fetch.Schemes, Hosts: cfg.Fetch.Hosts, MaxRedirects: cfg.Fetch.MaxRedirects}
	if fetcher == nil || fetcher.Timeout != want.Timeout || !slices.Equal(fetcher.Schemes, want.Schemes) ||
		!slices.Equal(fetcher.Hosts, want.Hosts) || fetcher.MaxRedirects != want.MaxRedirects {
		fetcher = &want
	}
	fetcher.Now = now
	e.Fetcher = fetcher
	e.Now = now
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

// DefaultOverrides are allowed when a policy does not say: CRLs a caller
// brings are evidence signed by the CA and can only add revocations;
// extra anchors and a weaker revocation mode change the policy itself
// (docs/security.md "Per-call overrides").
var DefaultOverrides = []policy.Override{policy.OverrideCRLs}

func buildPolicy(name string, pc config.Policy, list *policy.TrustedList) (*policy.Policy, error) {
	p := &policy.Policy{
		Name:                 name,
		Description:          pc.Description,
		RequiredPolicies:     pc.RequiredPolicies,
		RequiredQCStatements: pc.RequiredQCStatements,
		Revocation:           policy.RevocationMode(pc.Revocation.Mode),
		FetchCRLs:            pc.Revocation.FetchCRLs,
		OCSP:                 pc.Revocation.OCSP,
		OCSPMaxAge:           pc.Revocation.OCSPMaxAge,
		OCSPNoNonce:          pc.Revocation.OCSPNonce != nil && !*pc.Revocation.OCSPNonce,
		ClockTolerance:       pc.ClockTolerance,
		AllowOverrides:       DefaultOverrides,
	}
	if pc.AllowOverrides != nil {
		p.AllowOverrides = []policy.Override{}
		for _, o := range *pc.AllowOverrides {
			p.AllowOverrides = append(p.AllowOverrides, policy.Override(o))
		}
	}
	var err error
	if p.Anchors, err = pki.ReadCertificates(pc.Anchors...); err != nil {
		return nil, fmt.Errorf("anchors: %w", err)
	}
	if p.Intermediates, err = pki.ReadCertificates(pc.Intermediates...); err != nil {
		return nil, fmt.Errorf("intermediates: %w", err)
	}
	if tl := pc.TrustedList; tl != nil {
		if list == nil {
			return nil, fmt.Errorf("trusted list not loaded")
		}
		p.TrustedList, p.TrustedListGrace = list, tl.Grace
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
		hh, ok := policy.HashByName(h)
		if !ok {
			return nil, fmt.Errorf("algorithms.hashes: unknown hash %q", h)
		}
		rules.Hashes = append(rules.Hashes, hh)
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
