package cades

import (
	"context"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// TestTimestampVerifiedOnce: a signature time-stamp is verified once per
// Verify, and the call's work budget is charged for it once: one check of
// the token's signature, one path of the TSA's chain (docs/security.md
// "Work budget per verification"). Signer and cades used to verify the
// CAdES-T token each, so every legitimately time-stamped signature paid
// its TSA's path twice.
func TestTimestampVerifiedOnce(t *testing.T) {
	w := newWorld(t)
	sig := w.sign(t, filing, false)
	lta := w.augment(t, sig, filing, LevelLTA).Signature
	for _, tc := range []struct {
		name  string
		sig   []byte
		level Level
		// The counts: the signer's signature, its certificate, the CA's
		// CRL (once: later uses hit the call's cache), then per token its
		// signature, the TSA certificate; one path per chain judged.
		checks, paths, steps int
	}{
		{"T", sig, LevelT, 5, 2, 4},
		// The archive time-stamp is one more token, its TSA the same;
		// the CA's certificate embedded (certificate-values) is one more
		// candidate issuer per path.
		{"LTA", lta, LevelLTA, 6, 3, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := policy.NewBudget(context.Background(), policy.DefaultLimits)
			o := w.opts(filing, time.Time{}, w.crl)
			o.Policy.Context = policy.WithBudget(context.Background(), b)
			r, err := Verify(tc.sig, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict.Status != policy.Valid || r.Level != tc.level {
				t.Fatalf("%s %s %v", r.Verdict.Status, r.Level, r.Verdict.Reasons)
			}
			n := b.Counts()
			if n.SignatureChecks != tc.checks || n.Paths != tc.paths || n.Steps != tc.steps {
				t.Fatalf("work %+v, want %d signature checks, %d paths, %d steps", n, tc.checks, tc.paths, tc.steps)
			}
		})
	}
}
