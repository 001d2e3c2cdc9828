package policy

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// requestNonce finds the nonce extension of an OCSP request (x/crypto/ocsp
// does not parse request extensions).
func requestNonce(req []byte) []byte {
	oid, _ := asn1.Marshal(oidOCSPNonce)
	i := bytes.Index(req, oid)
	if i < 0 {
		return nil
	}
	s := cryptobyte.String(req[i+len(oid):])
	var outer, inner cryptobyte.String
	if !s.ReadASN1(&outer, cbasn1.OCTET_STRING) || !outer.ReadASN1(&inner, cbasn1.OCTET_STRING) {
		return nil
	}
	return inner
}

func TestOCSP(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	otherRoot := issue(t, nil, tmpl("Impostor", true), nil)
	responderT := func(cn string, nocheck bool) *x509.Certificate {
		r := tmpl(cn, false)
		r.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
		if nocheck {
			r.ExtraExtensions = []pkix.Extension{{Id: oidOCSPNoCheck, Value: []byte{5, 0}}}
		}
		return r
	}
	responder := issue(t, root, responderT("Responder", true), nil)
	checked := issue(t, root, responderT("Responder without nocheck", false), nil)
	expiredT := responderT("Expired responder", true)
	expiredT.NotAfter = testNow.Add(-time.Hour)
	expired := issue(t, root, expiredT, nil)
	foreign := issue(t, otherRoot, responderT("Responder of another CA", true), nil)
	noEKU := issue(t, root, tmpl("Not a responder", false), nil)

	type answer struct {
		status int
		signer *testCA
		nonce  []byte   // a nonce to answer with instead of the request's
		echo   bool     // echo the request's nonce
		serial *big.Int // answer for this serial instead of the one asked
		noNext bool     // no nextUpdate
		age    time.Duration
	}
	var ans answer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, "bad request", 400)
			return
		}
		serial := req.SerialNumber
		if ans.serial != nil {
			serial = ans.serial
		}
		age := ans.age
		if age == 0 {
			age = time.Minute
		}
		tpl := ocsp.Response{Status: ans.status, SerialNumber: serial, ThisUpdate: testNow.Add(-age), NextUpdate: testNow.Add(time.Hour), RevokedAt: testNow.Add(-time.Hour)}
		if ans.noNext {
			tpl.NextUpdate = time.Time{}
		}
		if ans.signer != root {
			tpl.Certificate = ans.signer.cert
		}
		nonce := ans.nonce
		if ans.echo {
			nonce, _ = asn1.Marshal(requestNonce(body))
		}
		if nonce != nil {
			tpl.ExtraExtensions = []pkix.Extension{{Id: oidOCSPNonce, Value: nonce}}
		}
		der, err := ocsp.CreateResponse(root.cert, ans.signer.cert, tpl, ans.signer.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(der)
	}))
	defer srv.Close()
	leafT := tmpl("Leaf", false)
	leafT.OCSPServer = []string{srv.URL}
	leaf := issue(t, root, leafT, nil)
	rootCRL := root.crl(t, nil, testNow.Add(24*time.Hour))
	checkedRevoked := root.crl(t, map[*x509.Certificate]time.Time{checked.cert: testNow.Add(-time.Hour)}, testNow.Add(24*time.Hour))
	p := func(name string, crls []*CRL, noNonce bool) *Policy {
		return &Policy{Name: name, Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, OCSP: true, CRLs: crls, OCSPNoNonce: noNonce}
	}
	e, err := NewEngine("p", p("p", nil, false), p("no-nonce", nil, true))
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	e.Fetcher = &Fetcher{Now: e.Now, Timeout: 2 * time.Second}
	tests := []struct {
		name   string
		policy string
		ans    answer
		status Status
		code   Code
	}{
		{"good, signed by the CA", "p", answer{status: ocsp.Good, signer: root, echo: true}, Valid, ""},
		{"revoked", "p", answer{status: ocsp.Revoked, signer: root, echo: true}, Invalid, CodeRevoked},
		{"good, authorised responder with nocheck", "p", answer{status: ocsp.Good, signer: responder, echo: true}, Valid, ""},
		{"responder without OCSPSigning", "p", answer{status: ocsp.Good, signer: noEKU, echo: true}, Indeterminate, CodeRevocationUnknown},
		{"signed by a stranger", "p", answer{status: ocsp.Good, signer: otherRoot, echo: true}, Indeterminate, CodeRevocationUnknown},
		{"responder of another CA", "p", answer{status: ocsp.Good, signer: foreign, echo: true}, Indeterminate, CodeRevocationUnknown},
		{"expired responder certificate", "p", answer{status: ocsp.Good, signer: expired, echo: true}, Indeterminate, CodeRevocationUnknown},
		{"responder without nocheck, status unknown", "p", answer{status: ocsp.Good, signer: checked, echo: true}, Indeterminate, CodeRevocationUnknown},
		{"wrong nonce", "p", answer{status: ocsp.Good, signer: root, nonce: []byte{4, 2, 1, 2}}, Indeterminate, CodeRevocationUnknown},
		{"nonce not echoed", "p", answer{status: ocsp.Good, signer: root}, Indeterminate, CodeRevocationUnknown},
		{"no nonce sent, none echoed", "no-nonce", answer{status: ocsp.Good, signer: root}, Valid, ""},
		{"no nextUpdate, fresh", "p", answer{status: ocsp.Good, signer: root, echo: true, noNext: true}, Valid, ""},
		{"no nextUpdate, two hours old", "p", answer{status: ocsp.Good, signer: root, echo: true, noNext: true, age: 2 * time.Hour}, Indeterminate, CodeRevocationUnknown},
		{"unknown", "p", answer{status: ocsp.Unknown, signer: root, echo: true}, Indeterminate, CodeRevocationUnknown},
		// A genuine "good" for another certificate of the same CA must not
		// vouch for this one (checkOCSP relies on ParseResponseForCert
		// matching the serial; this row keeps it honest).
		{"good for another serial", "p", answer{status: ocsp.Good, signer: root, echo: true, serial: big.NewInt(424242)}, Indeterminate, CodeRevocationUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans = tc.ans
			v := e.Validate(Request{Leaf: leaf.cert, Policy: tc.policy, At: testNow})
			if v.Status != tc.status || (tc.code != "" && v.Reasons[0].Code != tc.code) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}
	// A delegated responder without nocheck whose status the policy's CRLs
	// settle (the leaf's own status is asked of OCSP directly here).
	ans = answer{status: ocsp.Good, signer: checked, echo: true}
	for _, tc := range []struct {
		name string
		crl  *CRL
		ok   bool
	}{
		{"responder not revoked", rootCRL, true},
		{"responder revoked", checkedRevoked, false},
	} {
		pol := p("crl", []*CRL{tc.crl}, false)
		er := &engineRevocation{ctx: t.Context(), e: e, p: pol, mode: RevocationRequire, at: testNow, now: testNow,
			opts: PathOptions{Anchors: []*x509.Certificate{root.cert}, At: testNow}}
		st, ok := e.Fetcher.OCSPStatus(t.Context(), leaf.cert, root.cert, testNow, er.ocspRules())
		if ok != tc.ok || st.revoked {
			t.Fatalf("%s: %+v %v", tc.name, st, ok)
		}
	}
}
