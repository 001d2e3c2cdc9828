package policy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
)

// TestDefaultAlgorithmRules: a policy that names no algorithm rules (the
// "default" policy of trust.anchors has none) still refuses SHA-1
// signatures and small keys (docs/security.md "Algorithms").
func TestDefaultAlgorithmRules(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakRSA := issue(t, root, tmpl("RSA-1024", false), rsa1024)
	sha1T := tmpl("SHA-1 signed", false)
	sha1T.SignatureAlgorithm = x509.ECDSAWithSHA1
	sha1Leaf := issue(t, root, sha1T, nil)
	good := issue(t, root, tmpl("Good", false), nil)

	none := &Policy{Name: "none", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff}
	zero := &Policy{Name: "zero", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff, Algorithms: &AlgorithmRules{}}
	e, err := NewEngine("none", none, zero)
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range []string{"none", "zero"} {
		for _, tc := range []struct {
			name   string
			leaf   *x509.Certificate
			status Status
		}{
			{"RSA-1024 key", weakRSA.cert, Invalid},
			{"SHA-1 signature", sha1Leaf.cert, Invalid},
			{"P-256 SHA-256", good.cert, Valid},
		} {
			t.Run(pol+"/"+tc.name, func(t *testing.T) {
				v := e.Validate(Request{Leaf: tc.leaf, Policy: pol, At: testNow})
				if v.Status != tc.status {
					t.Fatalf("%s %v, want %s", v.Status, v.Reasons, tc.status)
				}
				if tc.status == Invalid && !slices.ContainsFunc(v.Reasons, func(r Reason) bool { return r.Code == CodeWeakAlgorithm }) {
					t.Fatalf("no WEAK_ALGORITHM in %v", v.Reasons)
				}
			})
		}
		info, err := e.Describe(pol, testNow)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"RSA >= 2048", "EC >= 256", "SHA-256", "defaults"} {
			if !strings.Contains(info.Algorithms, want) {
				t.Errorf("%s: Describe says %q, lacks %q", pol, info.Algorithms, want)
			}
		}
	}
}
