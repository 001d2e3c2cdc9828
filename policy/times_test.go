package policy

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestRequestTimes: each of the three times of a validation moves exactly
// the checks its comment names (docs/security.md "Revocation and proof of
// existence"):
//   - Request.At, the time judged at: the chain's validity and whether a
//     revocation counts;
//   - Request.Now: the currency of revocation data (CRLs, OCSP responses),
//     nothing else — neither the default At nor the trusted list's
//     freshness;
//   - the engine's clock (Engine.Now): the default At, the trusted list's
//     freshness, and the currency of revocation data when Request.Now is
//     unset — an OCSP response fetched online included, never the wall
//     clock.
func TestRequestTimes(t *testing.T) {
	root := issue(t, nil, tmpl("Times root", true), nil)
	leaf := issue(t, root, tmpl("Times leaf", false), nil)
	ocspLeafT := tmpl("Times OCSP leaf", false)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der, err := ocsp.CreateResponse(root.cert, root.cert, ocsp.Response{Status: ocsp.Good, SerialNumber: ocspLeafT.SerialNumber,
			ThisUpdate: testNow.Add(-time.Minute), NextUpdate: testNow.Add(time.Hour)}, root.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(der)
	}))
	defer srv.Close()
	ocspLeafT.OCSPServer = []string{srv.URL}
	ocspLeaf := issue(t, root, ocspLeafT, nil)
	tlRoot := issue(t, nil, tmpl("Times TL root", true), nil)
	tlLeaf := issue(t, tlRoot, tmpl("Times TL leaf", false), nil)
	list := &TrustedList{Territory: "XX", SequenceNumber: "9", NextUpdate: testNow,
		Services: []TrustService{{Provider: "P", Name: "S", Type: svcCAQC, Certs: []*x509.Certificate{tlRoot.cert},
			History: []ServiceStatus{{Status: grantedStatuses[0], Start: testNow.AddDate(-5, 0, 0)}}}}}
	// Issued two hours before testNow, expired an hour before it.
	oldCRL := root.makeCRL(t, crlOpts{number: 1, this: testNow.Add(-2 * time.Hour), next: testNow.Add(-time.Hour)})
	// Revokes the leaf half an hour before testNow.
	revCRL := root.makeCRL(t, crlOpts{number: 2, this: testNow.Add(-20 * time.Minute), next: testNow.Add(time.Hour),
		revoked: map[*x509.Certificate]int{leaf.cert: 0}, revokedAt: testNow.Add(-30 * time.Minute)})
	e, err := NewEngine("old-crl",
		&Policy{Name: "old-crl", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, CRLs: []*CRL{oldCRL}},
		&Policy{Name: "rev-crl", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, CRLs: []*CRL{revCRL}},
		&Policy{Name: "ocsp", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, OCSP: true, OCSPNoNonce: true},
		&Policy{Name: "tl", TrustedList: list, Revocation: RevocationOff})
	if err != nil {
		t.Fatal(err)
	}
	// The fetcher has no clock of its own, as pecetd's has none: an OCSP
	// response's currency must come from the engine, not the wall clock.
	e.Fetcher = &Fetcher{Timeout: 2 * time.Second}
	zero := time.Time{}
	tests := []struct {
		name         string
		policy       string
		leaf         *x509.Certificate
		at, now, clk time.Time
		status       Status
		code         Code
		validatedAt  time.Time // zero: not checked
	}{
		// At.
		{"At: revoked after At is good then", "rev-crl", leaf.cert, testNow.Add(-time.Hour), zero, testNow, Valid, "", testNow.Add(-time.Hour)},
		{"At: revoked before At", "rev-crl", leaf.cert, testNow, zero, testNow, Invalid, CodeRevoked, testNow},
		{"At: before the certificate", "rev-crl", leaf.cert, testNow.AddDate(-2, 0, 0), zero, testNow, Invalid, CodeNotYetValid, zero},
		// Now.
		{"Now: an expired CRL current at Now", "old-crl", leaf.cert, testNow.Add(-90 * time.Minute), testNow.Add(-70 * time.Minute), testNow, Valid, "", zero},
		{"Now unset: the clock finds the CRL expired", "old-crl", leaf.cert, testNow.Add(-90 * time.Minute), zero, testNow, Indeterminate, CodeRevocationUnknown, zero},
		{"Now: does not move the default At", "rev-crl", leaf.cert, zero, testNow.Add(-15 * time.Minute), testNow.Add(-10 * time.Minute), Invalid, CodeRevoked, testNow.Add(-10 * time.Minute)},
		{"Now: does not hide a stale trusted list", "tl", tlLeaf.cert, testNow.Add(-2 * time.Hour), testNow.Add(-time.Hour), testNow.Add(time.Hour), Indeterminate, CodeTrustedListExpired, zero},
		{"Now: judges an OCSP response's currency", "ocsp", ocspLeaf.cert, testNow, testNow.Add(3 * time.Hour), testNow, Indeterminate, CodeRevocationUnknown, zero},
		// The clock.
		{"clock: the default At", "rev-crl", leaf.cert, zero, zero, testNow.Add(-10 * time.Minute), Invalid, CodeRevoked, testNow.Add(-10 * time.Minute)},
		{"clock: CRL currency when Now is unset", "old-crl", leaf.cert, testNow.Add(-90 * time.Minute), zero, testNow.Add(-70 * time.Minute), Valid, "", zero},
		{"clock: trusted list current", "tl", tlLeaf.cert, testNow.Add(-2 * time.Hour), zero, testNow.Add(-time.Hour), Valid, "", zero},
		{"clock: trusted list stale", "tl", tlLeaf.cert, testNow.Add(-2 * time.Hour), zero, testNow.Add(time.Hour), Indeterminate, CodeTrustedListExpired, zero},
		{"clock: an OCSP response fetched online", "ocsp", ocspLeaf.cert, testNow, zero, testNow, Valid, "", zero},
		{"clock: an OCSP response fetched online, stale", "ocsp", ocspLeaf.cert, testNow, zero, testNow.Add(3 * time.Hour), Indeterminate, CodeRevocationUnknown, zero},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.Now = func() time.Time { return tc.clk }
			v := e.Validate(Request{Leaf: tc.leaf, Policy: tc.policy, At: tc.at, Now: tc.now})
			if v.Status != tc.status || (tc.code != "" && (len(v.Reasons) == 0 || v.Reasons[0].Code != tc.code)) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
			if !tc.validatedAt.IsZero() && !v.ValidatedAt.Equal(tc.validatedAt) {
				t.Fatalf("validated at %s, want %s", v.ValidatedAt, tc.validatedAt)
			}
		})
	}
}
