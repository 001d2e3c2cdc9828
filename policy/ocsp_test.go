package policy

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestOCSP(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	otherRoot := issue(t, nil, tmpl("Impostor", true), nil)
	respT := tmpl("Responder", false)
	respT.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	responder := issue(t, root, respT, nil)
	noEKU := issue(t, root, tmpl("Not a responder", false), nil)

	type answer struct {
		status int
		signer *testCA
		nonce  []byte
		serial *big.Int // answer for this serial instead of the one asked
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
		tpl := ocsp.Response{Status: ans.status, SerialNumber: serial, ThisUpdate: testNow.Add(-time.Minute), NextUpdate: testNow.Add(time.Hour), RevokedAt: testNow.Add(-time.Hour)}
		if ans.signer != root {
			tpl.Certificate = ans.signer.cert
		}
		if ans.nonce != nil {
			tpl.ExtraExtensions = []pkix.Extension{{Id: oidOCSPNonce, Value: ans.nonce}}
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
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, OCSP: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	e.Fetcher = &Fetcher{Now: e.Now, Timeout: 2 * time.Second}
	tests := []struct {
		name   string
		ans    answer
		status Status
		code   Code
	}{
		{"good, signed by the CA", answer{ocsp.Good, root, nil, nil}, Valid, ""},
		{"revoked", answer{ocsp.Revoked, root, nil, nil}, Invalid, CodeRevoked},
		{"good, authorised responder", answer{ocsp.Good, responder, nil, nil}, Valid, ""},
		{"responder without OCSPSigning", answer{ocsp.Good, noEKU, nil, nil}, Indeterminate, CodeRevocationUnknown},
		{"signed by a stranger", answer{ocsp.Good, otherRoot, nil, nil}, Indeterminate, CodeRevocationUnknown},
		{"wrong nonce", answer{ocsp.Good, root, []byte{4, 2, 1, 2}, nil}, Indeterminate, CodeRevocationUnknown},
		{"unknown", answer{ocsp.Unknown, root, nil, nil}, Indeterminate, CodeRevocationUnknown},
		// A genuine "good" for another certificate of the same CA must not
		// vouch for this one (checkOCSP relies on ParseResponseForCert
		// matching the serial; this row keeps it honest).
		{"good for another serial", answer{ocsp.Good, root, nil, big.NewInt(424242)}, Indeterminate, CodeRevocationUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans = tc.ans
			v := e.Validate(Request{Leaf: leaf.cert, At: testNow})
			if v.Status != tc.status || (tc.code != "" && v.Reasons[0].Code != tc.code) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}
}
