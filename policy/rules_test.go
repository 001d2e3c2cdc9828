package policy

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
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
				if tc.status == Invalid && (len(v.Reasons) != 1 || v.Reasons[0].Code != CodeWeakAlgorithm) {
					t.Fatalf("want one WEAK_ALGORITHM reason, got %v", v.Reasons)
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

// crlOpts describes a test CRL.
type crlOpts struct {
	number     int64
	this, next time.Time
	revoked    map[*x509.Certificate]int // certificate → reason
	revokedAt  time.Time
	deltaOf    int64 // base CRL number of a delta CRL; 0: complete
	// invalidity: each entry's invalidityDate (RFC 5280 5.3.2); zero: none.
	invalidity time.Time
}

func (ca *testCA) makeCRL(t testing.TB, o crlOpts) *CRL {
	t.Helper()
	rl := &x509.RevocationList{Number: big.NewInt(o.number), ThisUpdate: o.this, NextUpdate: o.next}
	for c, reason := range o.revoked {
		e := x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: o.revokedAt, ReasonCode: reason}
		if !o.invalidity.IsZero() {
			v, err := asn1.MarshalWithParams(o.invalidity.UTC(), "generalized")
			if err != nil {
				t.Fatal(err)
			}
			e.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 24}, Value: v}}
		}
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, e)
	}
	if o.deltaOf != 0 {
		v, _ := asn1.Marshal(big.NewInt(o.deltaOf))
		rl.ExtraExtensions = []pkix.Extension{{Id: oidExtDeltaCRLIndicator, Critical: true, Value: v}}
	}
	der, err := x509.CreateRevocationList(rand.Reader, rl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCRL(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCRLRules: which CRL proves a status at the validation time, the
// newest complete CRL and the newest delta win, and CRLs at hand are used
// under revocation "off" (docs/security.md "Revocation").
func TestCRLRules(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	leaf := issue(t, root, tmpl("Leaf", false), nil)
	day := 24 * time.Hour
	past := testNow.Add(-10 * day) // a past validation time
	rev := map[*x509.Certificate]int{leaf.cert: 1}
	hold := map[*x509.Certificate]int{leaf.cert: reasonCertificateHold}

	// Issued before the past time, valid then, expired now: it cannot
	// know of a revocation between its thisUpdate and the time.
	oldCRL := root.makeCRL(t, crlOpts{number: 1, this: past.Add(-5 * day), next: past.Add(5 * day)})
	// Issued after the past time, expired now: historical evidence.
	laterRevoked := root.makeCRL(t, crlOpts{number: 2, this: past.Add(day), next: past.Add(2 * day), revoked: rev, revokedAt: past.Add(-day)})
	current := root.makeCRL(t, crlOpts{number: 3, this: testNow.Add(-day), next: testNow.Add(day)})
	currentRevoked := root.makeCRL(t, crlOpts{number: 3, this: testNow.Add(-day), next: testNow.Add(day), revoked: rev, revokedAt: past.Add(-day)})
	// A hold lifted by the next complete CRL.
	held := root.makeCRL(t, crlOpts{number: 4, this: testNow.Add(-2 * day), next: testNow.Add(day), revoked: hold, revokedAt: testNow.Add(-3 * day)})
	released := root.makeCRL(t, crlOpts{number: 5, this: testNow.Add(-day), next: testNow.Add(day)})
	// Deltas on base 5: the newer one revokes.
	deltaGood := root.makeCRL(t, crlOpts{number: 6, this: testNow.Add(-time.Hour), next: testNow.Add(day), deltaOf: 5})
	deltaRevoked := root.makeCRL(t, crlOpts{number: 7, this: testNow.Add(-time.Minute), next: testNow.Add(day), deltaOf: 5, revoked: rev, revokedAt: testNow.Add(-2 * time.Hour)})
	futureCRL := root.makeCRL(t, crlOpts{number: 8, this: testNow.Add(day), next: testNow.Add(2 * day)})

	req := &Policy{Name: "require", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, AllowOverrides: []Override{OverrideCRLs}}
	off := &Policy{Name: "off", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff, AllowOverrides: []Override{OverrideCRLs}}
	e, err := NewEngine("require", req, off)
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	tests := []struct {
		name   string
		policy string
		at     time.Time
		crls   []*CRL
		status Status
		code   Code
	}{
		{"CRL issued before the past time, expired now", "require", past, []*CRL{oldCRL}, Indeterminate, CodeRevocationUnknown},
		{"CRL issued after the past time, expired now", "require", past, []*CRL{laterRevoked}, Invalid, CodeRevoked},
		{"current CRL proves a past time", "require", past, []*CRL{current}, Valid, ""},
		{"current CRL, revoked before the past time", "require", past, []*CRL{currentRevoked}, Invalid, CodeRevoked},
		{"current CRL at now", "require", testNow, []*CRL{current}, Valid, ""},
		{"CRL from the future", "require", testNow, []*CRL{futureCRL}, Indeterminate, CodeRevocationUnknown},
		{"newest complete CRL lifts a hold", "require", testNow, []*CRL{released, held}, Valid, ""},
		{"newest complete CRL lifts a hold, other order", "require", testNow, []*CRL{held, released}, Valid, ""},
		{"hold alone", "require", testNow, []*CRL{held}, Invalid, CodeRevoked},
		{"newest delta wins", "require", testNow, []*CRL{released, deltaGood, deltaRevoked}, Invalid, CodeRevoked},
		{"newest delta wins, other order", "require", testNow, []*CRL{released, deltaRevoked, deltaGood}, Invalid, CodeRevoked},
		{"off: a supplied CRL is used", "off", testNow, []*CRL{currentRevoked}, Invalid, CodeRevoked},
		{"off: nothing supplied", "off", testNow, nil, Valid, ""},
		{"off: unknown is no failure", "off", testNow, []*CRL{futureCRL}, Valid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := e.Validate(Request{Leaf: leaf.cert, Policy: tc.policy, At: tc.at, CRLs: tc.crls})
			if v.Status != tc.status {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
			if tc.code != "" && !slices.ContainsFunc(v.Reasons, func(r Reason) bool { return r.Code == tc.code }) {
				t.Fatalf("no %s in %v", tc.code, v.Reasons)
			}
			if tc.code == "" && len(v.Reasons) > 0 {
				t.Fatalf("reasons %v", v.Reasons)
			}
		})
	}
	// An explicit "off" on a require policy still uses the CRL it brings.
	v := e.Validate(Request{Leaf: leaf.cert, Policy: "off", Revocation: RevocationOff, At: testNow, CRLs: []*CRL{currentRevoked}})
	if v.Status != Invalid {
		t.Fatalf("revocation off with a CRL: %s %v", v.Status, v.Reasons)
	}
}

// TestOverrides: a policy lets callers override only what it lists; a
// forbidden override is an error (CheckOverrides) and never applied, and
// the verdict lists the overrides used (docs/security.md "Per-call
// overrides").
func TestOverrides(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	other := issue(t, nil, tmpl("Other root", true), nil)
	leaf := issue(t, root, tmpl("Leaf", false), nil)
	stranger := issue(t, other, tmpl("Stranger", false), nil)
	crl := root.makeCRL(t, crlOpts{number: 1, this: testNow.Add(-time.Hour), next: testNow.Add(time.Hour)})
	strict := &Policy{Name: "strict", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire}
	open := &Policy{Name: "open", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationPrefer, AllowOverrides: OverrideNames}
	e, err := NewEngine("strict", strict, open)
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	tests := []struct {
		name      string
		req       Request
		forbidden string // "" when allowed
		status    Status
		overrides []string
	}{
		{"none", Request{Leaf: leaf.cert, CRLs: nil}, "", Indeterminate, nil},
		{"revocation off on strict", Request{Leaf: leaf.cert, Revocation: RevocationOff}, "revocation", Indeterminate, []string{"revocation: off (policy: require)"}},
		{"revocation prefer on strict", Request{Leaf: leaf.cert, Revocation: RevocationPrefer}, "revocation", Indeterminate, []string{"revocation: prefer (policy: require)"}},
		{"extra anchor on strict", Request{Leaf: stranger.cert, Anchors: []*x509.Certificate{other.cert}}, "anchors", Indeterminate, []string{"anchors: 1 extra"}},
		{"CRL on strict", Request{Leaf: leaf.cert, CRLs: []*CRL{crl}}, "crls", Indeterminate, []string{"crls: 1 supplied"}},
		{"stricter revocation is always allowed", Request{Leaf: leaf.cert, Policy: "open", Revocation: RevocationRequire}, "", Indeterminate, []string{"revocation: require (policy: prefer)"}},
		{"revocation off on open", Request{Leaf: leaf.cert, Policy: "open", Revocation: RevocationOff}, "", Valid, []string{"revocation: off (policy: prefer)"}},
		{"extra anchor on open", Request{Leaf: stranger.cert, Policy: "open", Anchors: []*x509.Certificate{other.cert}, Revocation: RevocationOff}, "", Valid, []string{"revocation: off (policy: prefer)", "anchors: 1 extra"}},
		{"CRL on open", Request{Leaf: leaf.cert, Policy: "open", CRLs: []*CRL{crl}}, "", Valid, []string{"crls: 1 supplied"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.At = testNow
			err := e.CheckOverrides(tc.req)
			if tc.forbidden == "" && err != nil {
				t.Fatalf("CheckOverrides: %v", err)
			}
			if tc.forbidden != "" && (!errors.Is(err, ErrOverrideForbidden) || !strings.Contains(err.Error(), tc.forbidden)) {
				t.Fatalf("CheckOverrides: %v, want %s forbidden", err, tc.forbidden)
			}
			v := e.Validate(tc.req)
			if v.Status != tc.status || !slices.Equal(v.Overrides, tc.overrides) {
				t.Fatalf("%s %v overrides %q, want %s %q", v.Status, v.Reasons, v.Overrides, tc.status, tc.overrides)
			}
			if tc.forbidden != "" && (len(v.Reasons) != 1 || v.Reasons[0].Code != CodeOverrideForbidden) {
				t.Fatalf("forbidden override applied: %v", v.Reasons)
			}
		})
	}
	if _, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, AllowOverrides: []Override{"everything"}}); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("unknown override accepted: %v", err)
	}
}
