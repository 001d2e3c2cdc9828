package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestVerdictUsedObjects: a verdict lists the validation objects it rests
// on, for validation reports (docs/api.md "Validation reports"): the CRLs
// that gave the status (good or revoked), the OCSP response, the trusted
// list of the anchor; not a CRL that does not cover the certificate.
func TestVerdictUsedObjects(t *testing.T) {
	root := issue(t, nil, tmpl("Used root", true), nil)
	other := issue(t, nil, tmpl("Other root", true), nil)
	leaf := issue(t, root, tmpl("Used leaf", false), nil)
	good := root.crl(t, nil, testNow.Add(24*time.Hour))
	revoked := root.crl(t, map[*x509.Certificate]time.Time{leaf.cert: testNow.Add(-time.Hour)}, testNow.Add(24*time.Hour))
	unrelated := other.crl(t, nil, testNow.Add(24*time.Hour))

	var ocspDER []byte
	var ocspSerial *big.Int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der, err := ocsp.CreateResponse(root.cert, root.cert, ocsp.Response{Status: ocsp.Good, SerialNumber: ocspSerial,
			ThisUpdate: testNow.Add(-time.Minute), NextUpdate: testNow.Add(time.Hour)}, root.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		ocspDER = der
		w.Write(der)
	}))
	defer srv.Close()
	ocspLeafT := tmpl("OCSP leaf", false)
	ocspLeafT.OCSPServer = []string{srv.URL}
	ocspLeaf := issue(t, root, ocspLeafT, nil)
	ocspSerial = ocspLeaf.cert.SerialNumber

	tlDigest := sha256.Sum256([]byte("the list as loaded"))
	tl := &TrustedList{Territory: "XX", SequenceNumber: "7", IssueDate: testNow.Add(-48 * time.Hour), NextUpdate: testNow.Add(48 * time.Hour), SHA256: tlDigest[:],
		Services: []TrustService{{Provider: "P", Name: "S", Type: svcCAQC, Certs: []*x509.Certificate{root.cert},
			History: []ServiceStatus{{Status: grantedStatuses[0], Start: testNow.AddDate(-5, 0, 0)}}}}}

	tests := []struct {
		name   string
		policy *Policy
		leaf   *x509.Certificate
		status Status
		want   map[ObjectKind][]byte // kind -> the Raw (or Digest) expected
	}{
		{"good CRL", &Policy{Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, CRLs: []*CRL{unrelated, good}},
			leaf.cert, Valid, map[ObjectKind][]byte{ObjectCRL: good.raw}},
		{"revoking CRL", &Policy{Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, CRLs: []*CRL{revoked}},
			leaf.cert, Invalid, map[ObjectKind][]byte{ObjectCRL: revoked.raw}},
		{"revoking CRL under off", &Policy{Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff, CRLs: []*CRL{revoked}},
			leaf.cert, Invalid, map[ObjectKind][]byte{ObjectCRL: revoked.raw}},
		{"OCSP", &Policy{Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, OCSP: true, OCSPNoNonce: true},
			ocspLeaf.cert, Valid, map[ObjectKind][]byte{ObjectOCSPResponse: nil}},
		{"trusted list", &Policy{TrustedList: tl, Revocation: RevocationOff}, leaf.cert, Valid, map[ObjectKind][]byte{ObjectTrustedList: tlDigest[:]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.policy.Name = "p"
			e, err := NewEngine("p", tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			e.Now = func() time.Time { return testNow }
			e.Fetcher = &Fetcher{Now: e.Now, Timeout: 2 * time.Second}
			v := e.Validate(Request{Leaf: tc.leaf})
			if v.Status != tc.status {
				t.Fatalf("%s %v, want %s", v.Status, v.Reasons, tc.status)
			}
			if len(v.Used) != len(tc.want) {
				t.Fatalf("used %d objects, want %d: %+v", len(v.Used), len(tc.want), v.Used)
			}
			for _, u := range v.Used {
				want, ok := tc.want[u.Kind]
				if !ok {
					t.Fatalf("used a %s, want none", u.Kind)
				}
				if u.Kind == ObjectOCSPResponse {
					want = ocspDER
				}
				got := u.Raw
				if u.Kind == ObjectTrustedList {
					got = u.Digest
					if !strings.Contains(u.Name, "sequence 7") || !u.Time.Equal(tl.IssueDate) {
						t.Errorf("trusted list named %q at %s", u.Name, u.Time)
					}
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: not the object used", u.Kind)
				}
			}
		})
	}
}
