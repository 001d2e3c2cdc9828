package policy

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer serves a CRL (or a redirect) and counts its hits.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestFetchRules: pecetd fetches CRLs and asks OCSP responders only for
// paths to the policy's own anchors; redirects stay on the same scheme and
// host:port; verdicts summarise fetch failures in fixed words
// (docs/security.md "Fetching CRLs and OCSP responses").
func TestFetchRules(t *testing.T) {
	root := issue(t, nil, tmpl("Policy root", true), nil)
	caller := issue(t, nil, tmpl("Caller root", true), nil)
	crlOf := func(ca *testCA) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: testNow.Add(-time.Hour), NextUpdate: testNow.Add(time.Hour)}, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	rootCRL, callerCRL := crlOf(root), crlOf(caller)
	// The target a caller would like pecetd to hit, and a CA's server
	// that redirects to it or to a path of its own.
	target := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(callerCRL) })
	ca := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/elsewhere.crl":
			http.Redirect(w, r, target.URL+"/root.crl", http.StatusFound)
		case "/moved.crl":
			http.Redirect(w, r, "/root.crl", http.StatusMovedPermanently)
		default:
			w.Write(rootCRL)
		}
	})
	leafWith := func(ca *testCA, cdp string, ocspURL string) *x509.Certificate {
		tp := tmpl("Leaf", false)
		if cdp != "" {
			tp.CRLDistributionPoints = []string{cdp}
		}
		if ocspURL != "" {
			tp.OCSPServer = []string{ocspURL}
		}
		return issue(t, ca, tp, nil).cert
	}
	hostile := "http://127.0.0.1:1/%3Cscript%3Ealert(1)%3C/script%3E-secret-admin-token.crl"
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, FetchCRLs: true, OCSP: true, AllowOverrides: OverrideNames})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	e.Fetcher = &Fetcher{Now: e.Now, Timeout: 2 * time.Second, RetryAfter: time.Nanosecond}
	for _, tc := range []struct {
		name        string
		leaf        *x509.Certificate
		anchors     []*x509.Certificate
		status      Status
		targetHits  int64
		want        string
		mustNotHave []string
	}{
		{"per-call anchor: nothing fetched", leafWith(caller, target.URL+"/c.crl", target.URL+"/ocsp"), []*x509.Certificate{caller.cert},
			Indeterminate, 0, "nothing is fetched for a path to an anchor sent with the request", []string{"127.0.0.1"}},
		{"policy anchor: fetched", leafWith(root, ca.URL+"/root.crl", ""), nil, Valid, 0, "", nil},
		{"redirect on the same host: followed", leafWith(root, ca.URL+"/moved.crl", ""), nil, Valid, 0, "", nil},
		{"redirect to another port: not followed", leafWith(root, ca.URL+"/elsewhere.crl", ""), nil,
			Indeterminate, 0, "CRL distribution point not fetched: its URL or a redirect is not allowed", []string{"127.0.0.1", "redirect to"}},
		{"unreachable: summarised, not echoed", leafWith(root, hostile, hostile), nil,
			Indeterminate, 0, "CRL distribution point unreachable", []string{"127.0.0.1", "script", "secret", "dial", "connect", "refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := target.hits.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v := e.Validate(Request{Leaf: tc.leaf, Anchors: tc.anchors, At: testNow, Context: ctx})
			if got := target.hits.Load() - before; got != tc.targetHits {
				t.Errorf("the target was hit %d times, want %d", got, tc.targetHits)
			}
			if v.Status != tc.status {
				t.Fatalf("%s %v, want %s", v.Status, v.Reasons, tc.status)
			}
			var text strings.Builder
			for _, r := range v.Reasons {
				text.WriteString(r.Message + "\n")
			}
			if !strings.Contains(text.String(), tc.want) {
				t.Errorf("verdict %q lacks %q", text.String(), tc.want)
			}
			for _, bad := range tc.mustNotHave {
				if strings.Contains(text.String(), bad) {
					t.Errorf("verdict %q echoes %q", text.String(), bad)
				}
			}
		})
	}
	if ca.hits.Load() == 0 {
		t.Fatal("the CA's own server was never asked")
	}
}

// TestFetchAllowed: the schemes (http by default) and optional hosts
// allowed for fetching.
func TestFetchAllowed(t *testing.T) {
	for _, tc := range []struct {
		f    *Fetcher
		url  string
		want bool
	}{
		{&Fetcher{}, "http://crl.postsignum.cz/crl/psrootqca4.crl", true},
		{&Fetcher{}, "https://crl.postsignum.cz/crl/psrootqca4.crl", false},
		{&Fetcher{}, "ldap://ldap.example.cz/cn=ca", false},
		{&Fetcher{}, "file:///etc/passwd", false},
		{&Fetcher{}, "http://user:pw@crl.example.cz/x.crl", false},
		{&Fetcher{}, "http:///x.crl", false},
		{&Fetcher{Schemes: []string{"http", "https"}}, "https://crl.example.cz/x.crl", true},
		{&Fetcher{Hosts: []string{"crl.postsignum.cz"}}, "http://crl.postsignum.cz:8080/x.crl", true},
		{&Fetcher{Hosts: []string{"crl.postsignum.cz"}}, "http://169.254.169.254/latest/meta-data", false},
		{&Fetcher{Hosts: []string{".postsignum.cz"}}, "http://crl2.PostSignum.cz/x.crl", true},
		{&Fetcher{Hosts: []string{".postsignum.cz"}}, "http://postsignum.cz.evil.example/x.crl", false},
		{&Fetcher{Hosts: []string{"127.0.0.1:8080"}}, "http://127.0.0.1:8080/x.crl", true},
		{&Fetcher{Hosts: []string{"127.0.0.1:8080"}}, "http://127.0.0.1:8081/x.crl", false},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.f.Allowed(u); got != tc.want {
			t.Errorf("schemes %v hosts %v: %s allowed=%v, want %v", tc.f.Schemes, tc.f.Hosts, tc.url, got, tc.want)
		}
	}
	// A refused URL is not asked at all.
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	f := &Fetcher{Hosts: []string{"crl.example.cz"}}
	if _, err := f.CRL(context.Background(), srv.URL+"/x.crl"); !errors.Is(err, ErrFetchRefused) || srv.hits.Load() != 0 {
		t.Fatalf("%v, %d hits", err, srv.hits.Load())
	}
}
