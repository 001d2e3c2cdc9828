package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrOverrideForbidden: a request overrides what its policy does not let
// callers override (Policy.AllowOverrides).
var ErrOverrideForbidden = errors.New("policy: override not allowed by the policy")

// Override names a per-call override of a policy (Request.Anchors,
// Request.CRLs, Request.Revocation).
type Override string

// Overrides a policy may allow (docs/security.md "Per-call overrides").
const (
	// OverrideRevocation: a revocation mode weaker than the policy's
	// (require > prefer > off). A stricter mode is always accepted.
	OverrideRevocation Override = "revocation"
	// OverrideAnchors: extra trust anchors for one call.
	OverrideAnchors Override = "anchors"
	// OverrideCRLs: extra CRLs for one call.
	OverrideCRLs Override = "crls"
)

// OverrideNames lists the overrides a policy may allow.
var OverrideNames = []Override{OverrideRevocation, OverrideAnchors, OverrideCRLs}

// CodeOverrideForbidden: the request used an override the policy forbids
// (only when Validate is called without CheckOverrides first).
const CodeOverrideForbidden Code = "OVERRIDE_FORBIDDEN"

var revocationStrength = map[RevocationMode]int{RevocationOff: 0, RevocationPrefer: 1, RevocationRequire: 2}

// overrides lists the overrides r makes of p, for the verdict, and those p
// does not allow.
func (p *Policy) overrides(r Request) (used []string, forbidden []Override) {
	use := func(o Override, detail string) {
		used = append(used, string(o)+": "+detail)
		if !slices.Contains(p.AllowOverrides, o) {
			forbidden = append(forbidden, o)
		}
	}
	if r.Revocation != "" && r.Revocation != p.Revocation {
		detail := fmt.Sprintf("%s (policy: %s)", r.Revocation, p.Revocation)
		if revocationStrength[r.Revocation] < revocationStrength[p.Revocation] {
			use(OverrideRevocation, detail)
		} else {
			used = append(used, string(OverrideRevocation)+": "+detail) // stricter: always allowed
		}
	}
	if len(r.Anchors) > 0 {
		use(OverrideAnchors, fmt.Sprintf("%d extra", len(r.Anchors)))
	}
	if len(r.CRLs) > 0 {
		use(OverrideCRLs, fmt.Sprintf("%d supplied", len(r.CRLs)))
	}
	return used, forbidden
}

// OverrideError names the overrides a policy forbids; it wraps
// ErrOverrideForbidden and holds only configuration names, so its text
// may go to the caller.
type OverrideError struct {
	Policy    string
	Forbidden []Override
}

func (e *OverrideError) Error() string {
	return fmt.Sprintf("policy %q does not allow the per-call override %s (its allow_overrides: see `pecet policy show %s`)", e.Policy, overrideList(e.Forbidden), e.Policy)
}

func (e *OverrideError) Unwrap() error { return ErrOverrideForbidden }

// CheckOverrides returns an *OverrideError when r overrides what its
// policy does not allow; nil when all are allowed (or the policy is
// unknown: Validate reports that).
func (e *Engine) CheckOverrides(r Request) error {
	name := r.Policy
	if name == "" {
		name = e.def
	}
	p, ok := e.policies[name]
	if !ok {
		return nil
	}
	if _, forbidden := p.overrides(r); len(forbidden) > 0 {
		return &OverrideError{Policy: name, Forbidden: forbidden}
	}
	return nil
}

func overrideList(os []Override) string {
	s := make([]string, len(os))
	for i, o := range os {
		s[i] = string(o)
	}
	return strings.Join(s, ", ")
}
