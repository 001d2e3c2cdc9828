package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/policy"
)

var testPolicy = asn1.ObjectIdentifier{1, 2, 3, 4, 1}

// fixture is a dev CA, a software TSA key certified for time-stamping and
// an Authority on it.
type fixture struct {
	ca    *devca.CA
	key   crypto.Signer
	cert  *x509.Certificate
	chain []*x509.Certificate
	a     *Authority
	roots *x509.CertPool
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	now := time.Now()
	ca, err := devca.NewCA("tsa test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := ca.IssueKey("test TSA", devca.TSA, now)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ca: ca, key: key, cert: cert, chain: []*x509.Certificate{cert, ca.Cert}, roots: x509.NewCertPool()}
	f.roots.AddCert(ca.Cert)
	c := Config{
		Key:              StaticKey(key, f.chain),
		Policy:           testPolicy,
		AcceptedPolicies: []asn1.ObjectIdentifier{{1, 2, 3, 4, 2}},
		Accuracy:         1500 * time.Millisecond,
		IncludeTSAName:   true,
	}
	if mod != nil {
		mod(&c)
	}
	if f.a, err = New(c); err != nil {
		t.Fatal(err)
	}
	return f
}

// validator is the policy engine over the fixture's CA, as pecetd judges
// tokens (never crypto/x509's verifier).
func (f *fixture) validator() policy.Validator {
	e, err := policy.NewEngine("test", &policy.Policy{Name: "test", Anchors: []*x509.Certificate{f.ca.Cert}, Revocation: policy.RevocationOff})
	if err != nil {
		panic(err)
	}
	return e
}

// server is the Authority behind a real loopback HTTP server.
func (f *fixture) server(t testing.TB) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/tsa", Handler(f.a, nil))
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.URL + "/tsa"
}

func post(t testing.TB, url string, body []byte) []byte {
	t.Helper()
	resp, err := http.Post(url, ContentTypeQuery, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	if _, err := out.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ContentTypeReply {
		t.Fatalf("HTTP %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), out.Bytes())
	}
	return out.Bytes()
}

func stamp(t testing.TB, a *Authority, req *Request) (*Response, Result) {
	t.Helper()
	der, res := a.Stamp(context.Background(), req)
	r, err := ParseResponse(der)
	if err != nil {
		t.Fatalf("our own response does not parse: %v", err)
	}
	return r, res
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

func hasReason(v policy.Verdict, c policy.Code) bool {
	for _, r := range v.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}
