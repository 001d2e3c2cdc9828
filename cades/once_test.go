package cades

import (
	"context"
	"crypto"
	"crypto/x509"
	"reflect"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
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

// TestSharedTimestampsSameResult: sharing the tokens' results between
// cades and signer changes no verdict. Every input is verified both ways,
// with the shared verifier and with one that verifies a token each time it
// is asked (what Verify did before), and the results must be equal field
// for field: status, reasons, times, level, chain, used objects.
func TestSharedTimestampsSameResult(t *testing.T) {
	w, other := newWorld(t), newWorld(t)
	later := time.Now().Add(30 * 24 * time.Hour)
	signWith := func(attached bool, stamps ...func(context.Context, []byte, crypto.Hash) ([]byte, error)) []byte {
		sig, err := signer.Sign(filing, w.key, []*x509.Certificate{w.leaf, w.ca.Cert}, signer.Options{Attached: attached,
			UnsignedAttributes: func(sv []byte) ([]signer.Attribute, error) {
				var toks [][]byte
				for _, s := range stamps {
					tok, err := s(context.Background(), sum(crypto.SHA256, sv), crypto.SHA256)
					if err != nil {
						return nil, err
					}
					toks = append(toks, tok)
				}
				return []signer.Attribute{{Type: oidSigTimeStamp, Values: toks}}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	tSig := w.sign(t, filing, false)
	lt := w.augment(t, tSig, filing, LevelLT).Signature
	lta := w.augment(t, lt, filing, LevelLTA).Signature
	badToken := flipIn(t, tSig, valueOf(t, tSig, oidSigTimeStamp))
	digest := sum(crypto.SHA256, filing)
	for _, tc := range []struct {
		name string
		sig  []byte
		opts VerifyOptions
	}{
		{"T", tSig, w.opts(filing, time.Time{}, w.crl)},
		{"T attached", w.sign(t, filing, true), w.opts(nil, time.Time{}, w.crl)},
		{"T digest", tSig, VerifyOptions{VerifyOptions: signer.VerifyOptions{Digest: digest, DigestHash: crypto.SHA256, Validator: w.engine, Policy: policy.Request{Policy: "strict", CRLs: []*policy.CRL{w.crl}}}}},
		{"T later", tSig, w.opts(filing, later, w.crl)},
		{"T without CRL", tSig, w.opts(filing, time.Time{})},
		{"T no validator", tSig, VerifyOptions{VerifyOptions: signer.VerifyOptions{Content: filing}}},
		{"token changed", badToken, w.opts(filing, time.Time{}, w.crl)},
		{"untrusted TSA", signWith(false, other.stamp), w.opts(filing, time.Time{}, w.crl)},
		{"two tokens, one untrusted", signWith(false, other.stamp, w.stamp), w.opts(filing, time.Time{}, w.crl)},
		{"same token twice", signWith(false, w.stamp, w.stamp), w.opts(filing, time.Time{}, w.crl)},
		{"LT", lt, w.opts(filing, time.Time{})},
		{"LT later", lt, w.opts(filing, later)},
		{"LTA", lta, w.opts(filing, time.Time{})},
		{"LTA later", lta, w.opts(filing, later)},
		{"wrong content", tSig, w.opts([]byte("other"), time.Time{}, w.crl)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One clock for both: a verdict judged at now names the time.
			clock := time.Now()
			tc.opts.Now = func() time.Time { return clock }
			shared, err := Verify(tc.sig, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			old := shareTimestamps
			shareTimestamps = func(inner tsa.Verifier) timestampVerifier { return inner }
			each, err := Verify(tc.sig, tc.opts)
			shareTimestamps = old
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(shared, each) {
				t.Fatalf("shared: %s %s %v\neach:   %s %s %v", shared.Verdict.Status, shared.Level, shared.Verdict.Reasons, each.Verdict.Status, each.Level, each.Verdict.Reasons)
			}
			t.Logf("%s %s %d reasons", shared.Verdict.Status, shared.Level, len(shared.Verdict.Reasons))
		})
	}
}
