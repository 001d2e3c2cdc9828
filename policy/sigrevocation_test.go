package policy

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestSignatureRevocation: Request.Signature makes the engine judge a
// revoked leaf against the signature's proof of existence, whatever says
// it is revoked (a CRL under require or off, an OCSP response fetched
// online); without Request.Signature, or for a TSA
// (KeyCompromiseAnyTime), the plain rule stays (docs/security.md
// "Revocation and proof of existence").
func TestSignatureRevocation(t *testing.T) {
	root := issue(t, nil, tmpl("Sigrev root", true), nil)
	leaf := issue(t, root, tmpl("Sigrev leaf", false), nil)
	ocspLeafT := tmpl("Sigrev OCSP leaf", false)
	revokedAt := testNow.Add(-30 * time.Minute)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der, err := ocsp.CreateResponse(root.cert, root.cert, ocsp.Response{Status: ocsp.Revoked, SerialNumber: ocspLeafT.SerialNumber,
			RevokedAt: revokedAt, ThisUpdate: testNow.Add(-time.Minute), NextUpdate: testNow.Add(time.Hour)}, root.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(der)
	}))
	defer srv.Close()
	ocspLeafT.OCSPServer = []string{srv.URL}
	ocspLeaf := issue(t, root, ocspLeafT, nil)
	crl := root.makeCRL(t, crlOpts{number: 1, this: testNow.Add(-20 * time.Minute), next: testNow.Add(time.Hour),
		revoked: map[*x509.Certificate]int{leaf.cert: 0}, revokedAt: revokedAt})
	e, err := NewEngine("crl",
		&Policy{Name: "crl", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, CRLs: []*CRL{crl}},
		&Policy{Name: "off", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff, CRLs: []*CRL{crl}},
		&Policy{Name: "ocsp", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, OCSP: true, OCSPNoNonce: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	e.Fetcher = &Fetcher{Now: e.Now, Timeout: 2 * time.Second}
	zero := time.Time{}
	noPOE := &SignatureTime{Claimed: testNow.Add(-time.Hour)}
	poe := &SignatureTime{POE: true}
	tests := []struct {
		name   string
		policy string
		leaf   *x509.Certificate
		at     time.Time
		sig    *SignatureTime
		kcAny  bool
		status Status
		code   Code
	}{
		{"CRL, POE before the revocation", "crl", leaf.cert, testNow.Add(-time.Hour), poe, false, Valid, ""},
		{"CRL, POE after the revocation", "crl", leaf.cert, testNow, poe, false, Indeterminate, CodeRevokedNoPOE},
		{"CRL, no POE", "crl", leaf.cert, zero, noPOE, false, Indeterminate, CodeRevokedNoPOE},
		{"CRL, no POE, claimed after the revocation", "crl", leaf.cert, zero, &SignatureTime{Claimed: testNow.Add(-10 * time.Minute)}, false, Invalid, CodeRevoked},
		{"CRL under off, no POE", "off", leaf.cert, zero, noPOE, false, Indeterminate, CodeRevokedNoPOE},
		{"OCSP, POE before the revocation", "ocsp", ocspLeaf.cert, testNow.Add(-time.Hour), poe, false, Valid, ""},
		{"OCSP, POE after the revocation", "ocsp", ocspLeaf.cert, testNow, poe, false, Indeterminate, CodeRevokedNoPOE},
		{"OCSP, no POE", "ocsp", ocspLeaf.cert, zero, noPOE, false, Indeterminate, CodeRevokedNoPOE},
		{"a certificate, not a signature", "crl", leaf.cert, zero, nil, false, Invalid, CodeRevoked},
		{"a TSA: KeyCompromiseAnyTime keeps the plain rule", "crl", leaf.cert, zero, noPOE, true, Invalid, CodeRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := e.Validate(Request{Leaf: tc.leaf, Policy: tc.policy, At: tc.at, Signature: tc.sig, KeyCompromiseAnyTime: tc.kcAny})
			if v.Status != tc.status || (tc.code != "" && (len(v.Reasons) == 0 || v.Reasons[0].Code != tc.code)) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}
}

// TestSignatureRevocationCA: a revoked CA of a signature's path is judged
// against the signature's proof of existence as the signing certificate
// is (ETSI EN 319 102-1 REVOKED_CA_NO_POE; docs/security.md "Revocation
// and proof of existence"): revoked after the POE is good unless its key
// was compromised (invalidityDate) at or before it; otherwise
// INDETERMINATE, REVOKED_CA_NO_POE, or INVALID, REVOKED when the signer's
// own claimed signing-time is at or after the revocation; whether a CRL
// or an OCSP response says it is revoked. Without Request.Signature, or
// for a TSA, the plain rule stays.
func TestSignatureRevocationCA(t *testing.T) {
	root := issue(t, nil, tmpl("Sigrev CA root", true), nil)
	inter := issue(t, root, tmpl("Sigrev CA intermediate", true), nil)
	leaf := issue(t, inter, tmpl("Sigrev CA leaf", false), nil)
	revokedAt := testNow.Add(-30 * time.Minute)
	const keyCompromise = 1
	// A second intermediate whose status only its OCSP responder gives.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, "bad request", 400)
			return
		}
		der, err := ocsp.CreateResponse(root.cert, root.cert, ocsp.Response{Status: ocsp.Revoked, SerialNumber: req.SerialNumber,
			RevokedAt: revokedAt, ThisUpdate: testNow.Add(-time.Minute), NextUpdate: testNow.Add(time.Hour)}, root.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(der)
	}))
	defer srv.Close()
	ocspInterT := tmpl("Sigrev CA OCSP intermediate", true)
	ocspInterT.OCSPServer = []string{srv.URL}
	ocspInter := issue(t, root, ocspInterT, nil)
	ocspLeaf := issue(t, ocspInter, tmpl("Sigrev CA OCSP leaf", false), nil)
	ocspInterCRL := ocspInter.makeCRL(t, crlOpts{number: 1, this: testNow.Add(-20 * time.Minute), next: testNow.Add(time.Hour)})
	interCRL := inter.makeCRL(t, crlOpts{number: 1, this: testNow.Add(-20 * time.Minute), next: testNow.Add(time.Hour)})
	rootCRL := func(number int64, reason int, at, invalidity time.Time) *CRL {
		return root.makeCRL(t, crlOpts{number: number, this: testNow.Add(-20 * time.Minute), next: testNow.Add(time.Hour),
			revoked: map[*x509.Certificate]int{inter.cert: reason}, revokedAt: at, invalidity: invalidity})
	}
	// The CA revoked at revokedAt; or for keyCompromise at revokedAt, its
	// key compromised since an hour and a half before testNow (before the
	// POE at testNow-1h) or since testNow-50m (after it).
	plain := rootCRL(1, 0, revokedAt, time.Time{})
	kcBefore := rootCRL(2, keyCompromise, revokedAt, testNow.Add(-90*time.Minute))
	kcAfter := rootCRL(3, keyCompromise, revokedAt, testNow.Add(-50*time.Minute))
	pol := func(name string, mode RevocationMode, crl *CRL) *Policy {
		return &Policy{Name: name, Anchors: []*x509.Certificate{root.cert}, Revocation: mode, CRLs: []*CRL{crl, interCRL}}
	}
	e, err := NewEngine("crl", pol("crl", RevocationRequire, plain), pol("off", RevocationOff, plain), pol("prefer", RevocationPrefer, plain),
		pol("kc-before", RevocationRequire, kcBefore), pol("kc-after", RevocationRequire, kcAfter),
		&Policy{Name: "ocsp", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, OCSP: true, OCSPNoNonce: true, CRLs: []*CRL{ocspInterCRL}})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	e.Fetcher = &Fetcher{Now: e.Now, Timeout: 2 * time.Second}
	zero := time.Time{}
	noPOE := &SignatureTime{Claimed: testNow.Add(-time.Hour)}
	poe := &SignatureTime{POE: true}
	tests := []struct {
		name   string
		policy string
		at     time.Time
		sig    *SignatureTime
		kcAny  bool
		status Status
		code   Code
	}{
		{"POE before the CA's revocation", "crl", testNow.Add(-time.Hour), poe, false, Valid, ""},
		{"POE after the CA's revocation", "crl", testNow, poe, false, Indeterminate, CodeRevokedCANoPOE},
		{"no POE", "crl", zero, noPOE, false, Indeterminate, CodeRevokedCANoPOE},
		{"no POE, no claimed signing-time", "crl", zero, &SignatureTime{}, false, Indeterminate, CodeRevokedCANoPOE},
		{"no POE, claimed after the CA's revocation", "crl", zero, &SignatureTime{Claimed: testNow.Add(-10 * time.Minute)}, false, Invalid, CodeRevoked},
		{"no POE, under off", "off", zero, noPOE, false, Indeterminate, CodeRevokedCANoPOE},
		{"no POE, under prefer", "prefer", zero, noPOE, false, Indeterminate, CodeRevokedCANoPOE},
		{"the CA's key compromised before the POE, revoked after it", "kc-before", testNow.Add(-time.Hour), poe, false, Indeterminate, CodeRevokedCANoPOE},
		{"the CA's key compromised after the POE", "kc-after", testNow.Add(-time.Hour), poe, false, Valid, ""},
		{"OCSP, POE before the CA's revocation", "ocsp", testNow.Add(-time.Hour), poe, false, Valid, ""},
		{"OCSP, POE after the CA's revocation", "ocsp", testNow, poe, false, Indeterminate, CodeRevokedCANoPOE},
		{"OCSP, no POE", "ocsp", zero, noPOE, false, Indeterminate, CodeRevokedCANoPOE},
		{"a certificate, not a signature", "crl", zero, nil, false, Invalid, CodeRevoked},
		{"a TSA: KeyCompromiseAnyTime keeps the plain rule", "crl", zero, noPOE, true, Invalid, CodeRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf, inter := leaf, inter
			if tc.policy == "ocsp" {
				leaf, inter = ocspLeaf, ocspInter
			}
			v := e.Validate(Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: tc.policy, At: tc.at, Signature: tc.sig, KeyCompromiseAnyTime: tc.kcAny})
			if v.Status != tc.status || (tc.code != "" && (len(v.Reasons) == 0 || v.Reasons[0].Code != tc.code)) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
			if tc.code == CodeRevokedCANoPOE && len(v.Reasons) != 1 {
				t.Fatalf("want only REVOKED_CA_NO_POE: %v", v.Reasons)
			}
		})
	}
}
