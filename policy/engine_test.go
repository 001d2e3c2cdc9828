package policy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serialCounter atomic.Int64

func ecKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func tmpl(cn string, ca bool) *x509.Certificate {
	c := &x509.Certificate{
		SerialNumber:          big.NewInt(serialCounter.Add(1)),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"pecet test"}},
		NotBefore:             testNow.AddDate(-1, 0, 0),
		NotAfter:              testNow.AddDate(1, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  ca,
	}
	if ca {
		c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		c.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	return c
}

func issue(t testing.TB, parent *testCA, tpl *x509.Certificate, key crypto.Signer) *testCA {
	t.Helper()
	if key == nil {
		key = ecKey(t)
	}
	pc, pk := tpl, key
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: mustCert(t, der), key: key}
}

func (ca *testCA) crl(t testing.TB, revoked map[*x509.Certificate]time.Time, next time.Time) *CRL {
	t.Helper()
	rl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: testNow.Add(-time.Hour), NextUpdate: next}
	for c, when := range revoked {
		rl.RevokedCertificateEntries = append(rl.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: when, ReasonCode: 1})
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

func qcStatements(t testing.TB, sscd bool, types ...string) pkix.Extension {
	type stmt struct {
		ID   asn1.ObjectIdentifier
		Info asn1.RawValue `asn1:"optional"`
	}
	var st []stmt
	st = append(st, stmt{ID: oidQcCompliance})
	if sscd {
		st = append(st, stmt{ID: oidQcSSCD})
	}
	if len(types) > 0 {
		var oids []asn1.ObjectIdentifier
		for _, ty := range types {
			switch ty {
			case "esign":
				oids = append(oids, asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 1})
			case "eseal":
				oids = append(oids, asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6, 2})
			}
		}
		b, _ := asn1.Marshal(oids)
		st = append(st, stmt{ID: oidQcType, Info: asn1.RawValue{FullBytes: b}})
	}
	v, err := asn1.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidQCStatements, Value: v}
}

func TestEngineReasons(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	inter := issue(t, root, tmpl("Inter", true), nil)
	leaf := issue(t, inter, tmpl("Leaf", false), nil)
	otherRoot := issue(t, nil, tmpl("Other root", true), nil)

	expiredT := tmpl("Expired", false)
	expiredT.NotAfter = testNow.AddDate(0, -1, 0)
	expired := issue(t, inter, expiredT, nil)

	noCAT := tmpl("Not a CA", false)
	notCA := issue(t, root, noCAT, nil)
	underNotCA := issue(t, notCA, tmpl("Under not a CA", false), nil)

	encT := tmpl("Encryption only", false)
	encT.KeyUsage = x509.KeyUsageKeyEncipherment
	encOnly := issue(t, inter, encT, nil)

	ncT := tmpl("Constrained", true)
	ncT.PermittedDNSDomains = []string{"example.cz"}
	constrained := issue(t, root, ncT, nil)
	badNameT := tmpl("Bad name", false)
	badNameT.DNSNames = []string{"evil.example.com"}
	badName := issue(t, constrained, badNameT, nil)

	critT := tmpl("Critical", false)
	critT.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}
	crit := issue(t, inter, critT, nil)

	polT := tmpl("Policy", false)
	polT.Policies = []x509.OID{mustOID(t, "1.2.3.4.5")}
	withPolicy := issue(t, inter, polT, nil)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakLeaf := issue(t, inter, tmpl("Weak RSA", false), rsaKey)
	sha1T := tmpl("SHA-1 signed", false)
	sha1T.SignatureAlgorithm = x509.ECDSAWithSHA1
	sha1Leaf := issue(t, inter, sha1T, nil)

	qcT := tmpl("Qualified", false)
	qcT.ExtraExtensions = []pkix.Extension{qcStatements(t, true, "esign")}
	qc := issue(t, inter, qcT, nil)
	qcNoSSCDT := tmpl("Qualified no QSCD", false)
	qcNoSSCDT.ExtraExtensions = []pkix.Extension{qcStatements(t, false, "eseal")}
	qcNoSSCD := issue(t, inter, qcNoSSCDT, nil)

	crl := inter.crl(t, map[*x509.Certificate]time.Time{leaf.cert: testNow.Add(-time.Hour)}, testNow.Add(24*time.Hour))
	staleCRL := inter.crl(t, nil, testNow.Add(-time.Minute))
	rootCRL := root.crl(t, nil, testNow.Add(24*time.Hour))

	base := func(name string) *Policy {
		return &Policy{Name: name, Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff,
			Algorithms: &AlgorithmRules{MinRSABits: 2048, MinECBits: 256}, AllowOverrides: OverrideNames}
	}
	qualified := base("qualified")
	qualified.RequiredQCStatements = []string{"compliance", "sscd"}
	required := base("require")
	required.Revocation = RevocationRequire
	required.CRLs = []*CRL{rootCRL}
	pol := base("policies")
	pol.RequiredPolicies = []string{"1.2.3.4.5"}
	e, err := NewEngine("test", base("test"), qualified, required, pol)
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }

	tests := []struct {
		name    string
		req     Request
		status  Status
		code    Code
		qualify Qualification
	}{
		{"valid", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Purpose: PurposeSigning}, Valid, "", AdES},
		{"no intermediate", Request{Leaf: leaf.cert, Purpose: PurposeSigning}, Indeterminate, CodeUntrustedRoot, ""},
		{"other root", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Anchors: nil, Policy: "test"}, Valid, "", AdES},
		{"untrusted root", Request{Leaf: issue(t, otherRoot, tmpl("Stranger", false), nil).cert}, Indeterminate, CodeUntrustedRoot, ""},
		{"extra anchor", Request{Leaf: issue(t, otherRoot, tmpl("Stranger", false), nil).cert, Anchors: []*x509.Certificate{otherRoot.cert}}, Valid, "", AdES},
		{"expired", Request{Leaf: expired.cert, Intermediates: []*x509.Certificate{inter.cert}}, Invalid, CodeExpired, ""},
		{"not yet valid", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, At: testNow.AddDate(-2, 0, 0)}, Invalid, CodeNotYetValid, ""},
		{"issuer not a CA", Request{Leaf: underNotCA.cert, Intermediates: []*x509.Certificate{notCA.cert}}, Invalid, CodeChainInvalid, ""},
		{"key usage", Request{Leaf: encOnly.cert, Intermediates: []*x509.Certificate{inter.cert}, Purpose: PurposeSigning}, Invalid, CodeKeyUsage, ""},
		{"timestamping needs EKU", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Purpose: PurposeTimestamping}, Invalid, CodeKeyUsage, ""},
		{"name constraints", Request{Leaf: badName.cert, Intermediates: []*x509.Certificate{constrained.cert}}, Invalid, CodeNameConstraints, ""},
		{"unknown critical extension", Request{Leaf: crit.cert, Intermediates: []*x509.Certificate{inter.cert}}, Invalid, CodeUnknownCriticalExtension, ""},
		{"required policy missing", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "policies"}, Invalid, CodePolicy, ""},
		{"required policy absent in CA", Request{Leaf: withPolicy.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "policies"}, Invalid, CodePolicy, ""},
		{"weak RSA key", Request{Leaf: weakLeaf.cert, Intermediates: []*x509.Certificate{inter.cert}}, Invalid, CodeWeakAlgorithm, ""},
		{"SHA-1 signature", Request{Leaf: sha1Leaf.cert, Intermediates: []*x509.Certificate{inter.cert}}, Invalid, CodeWeakAlgorithm, ""},
		{"revoked", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "require", CRLs: []*CRL{crl}}, Invalid, CodeRevoked, ""},
		{"revoked after the time", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "require", CRLs: []*CRL{crl}, At: testNow.Add(-2 * time.Hour)}, Valid, "", AdES},
		{"revocation unknown", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "require"}, Indeterminate, CodeRevocationUnknown, ""},
		{"stale CRL", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "require", CRLs: []*CRL{staleCRL}}, Indeterminate, CodeRevocationUnknown, ""},
		{"prefer keeps VALID", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "require", Revocation: RevocationPrefer}, Valid, CodeRevocationUnknown, AdES},
		{"not qualified", Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "qualified"}, Invalid, CodeMissingQCStatement, ""},
		{"QES", Request{Leaf: qc.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "qualified"}, Valid, "", QES},
		{"AdES-QC lacks QSCD", Request{Leaf: qcNoSSCD.cert, Intermediates: []*x509.Certificate{inter.cert}, Policy: "qualified"}, Invalid, CodeMissingQCStatement, ""},
		{"AdES-QC", Request{Leaf: qcNoSSCD.cert, Intermediates: []*x509.Certificate{inter.cert}}, Valid, "", AdESQC},
		{"unknown policy", Request{Leaf: leaf.cert, Policy: "nope"}, Indeterminate, CodeUnknownPolicy, ""},
		{"no certificate", Request{}, Indeterminate, CodeSignerNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.req.At.IsZero() {
				tc.req.At = testNow
			}
			v := e.Validate(tc.req)
			if v.Status != tc.status {
				t.Fatalf("status %s, want %s: %v", v.Status, tc.status, v.Reasons)
			}
			if tc.code != "" && !slices.ContainsFunc(v.Reasons, func(r Reason) bool { return r.Code == tc.code }) {
				t.Fatalf("no reason %s in %v", tc.code, v.Reasons)
			}
			if tc.status == Valid && tc.code == "" && len(v.Reasons) > 0 {
				t.Fatalf("VALID with reasons %v", v.Reasons)
			}
			if tc.qualify != "" && v.Qualification != tc.qualify {
				t.Fatalf("qualification %q, want %q", v.Qualification, tc.qualify)
			}
		})
	}
}

func mustOID(t testing.TB, s string) x509.OID {
	o, err := x509.ParseOID(s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestHostileChains: a loop of cross-certificates and a chain of 10,000
// certificates end within the bounds with a clear verdict.
func TestHostileChains(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	// A and B certify each other (same names and keys, both directions),
	// none reaches the root.
	ka, kb := ecKey(t), ecKey(t)
	aT, bT := tmpl("Loop A", true), tmpl("Loop B", true)
	a := issue(t, nil, aT, ka)
	b := issue(t, a, bT, kb)
	a2 := issue(t, b, tmpl("Loop A", true), ka)
	b2 := issue(t, a2, tmpl("Loop B", true), kb)
	leaf := issue(t, a, tmpl("Leaf in loop", false), nil)
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff})
	if err != nil {
		t.Fatal(err)
	}
	v := e.Validate(Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{a.cert, b.cert, a2.cert, b2.cert}, At: testNow})
	if v.Status != Indeterminate || v.Reasons[0].Code != CodeUntrustedRoot {
		t.Fatalf("loop: %s %v", v.Status, v.Reasons)
	}

	// 10,000 certificates each issued by the next: depth and work bounds.
	var chain []*x509.Certificate
	prev := issue(t, root, tmpl("Deep 0", true), nil)
	chain = append(chain, prev.cert)
	for i := 1; i < 10000; i++ {
		tpl := tmpl("Deep", true)
		tpl.Subject.CommonName = "Deep " + big.NewInt(int64(i)).String()
		prev = issue(t, prev, tpl, prev.key) // same key: cheap to make
		chain = append(chain, prev.cert)
	}
	start := time.Now()
	v = e.Validate(Request{Leaf: chain[len(chain)-1], Intermediates: chain[:len(chain)-1], At: testNow})
	if v.Status != Indeterminate || v.Reasons[0].Code != CodePathBound {
		t.Fatalf("deep chain: %s %v", v.Status, v.Reasons)
	}
	t.Logf("10,000-certificate chain refused in %v", time.Since(start))
}

func TestAlgorithmSuite(t *testing.T) {
	data, err := os.ReadFile(testtool.Vectors(t, "etsi-ts-119-312-crypto-suite.xml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseAlgorithmSuite(data)
	if err != nil {
		t.Fatal(err)
	}
	rsa := func(b int) map[string]int { return map[string]int{"moduluslength": b} }
	tests := []struct {
		name   string
		oid    string
		params map[string]int
		at     time.Time
		ok     bool
	}{
		{"SHA-256 now", "2.16.840.1.101.3.4.2.1", nil, testNow, true},
		{"SHA-1 now", "1.3.14.3.2.26", nil, testNow, false},
		{"SHA-1 in 2011", "1.3.14.3.2.26", nil, time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"RSA-2048 SHA-256 now", "1.2.840.113549.1.1.11", rsa(2048), testNow, true},
		{"RSA-1024 SHA-256 now", "1.2.840.113549.1.1.11", rsa(1024), testNow, false},
		{"RSA-2048 SHA-256 in 2030", "1.2.840.113549.1.1.11", rsa(2048), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"RSA-512", "1.2.840.113549.1.1.11", rsa(512), testNow, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := s.check(tc.oid, tc.params, tc.at)
			if (msg == "") != tc.ok {
				t.Fatalf("check = %q, want ok=%v", msg, tc.ok)
			}
		})
	}
	if _, err := ParseAlgorithmSuite([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><x/>`)); err == nil {
		t.Fatal("DOCTYPE accepted")
	}
}

// TestFetcher: CRLs from a distribution point are cached until
// nextUpdate; an unreachable server gives REVOCATION_UNKNOWN quickly.
func TestFetcher(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	var hits atomic.Int64
	var crlDER []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/big.crl" {
			w.Write(make([]byte, 2<<20))
			return
		}
		w.Write(crlDER)
	}))
	defer srv.Close()
	leafT := tmpl("Leaf", false)
	leafT.CRLDistributionPoints = []string{srv.URL + "/root.crl"}
	leaf := issue(t, root, leafT, nil)
	rl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: testNow.Add(-time.Hour), NextUpdate: testNow.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf.cert.SerialNumber, RevocationTime: testNow.Add(-time.Minute)}}}
	var err error
	if crlDER, err = x509.CreateRevocationList(rand.Reader, rl, root.cert, root.key); err != nil {
		t.Fatal(err)
	}
	clock := testNow
	f := &Fetcher{Now: func() time.Time { return clock }, Timeout: 2 * time.Second, MaxCRLBytes: 1 << 20}
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, FetchCRLs: true})
	if err != nil {
		t.Fatal(err)
	}
	e.Fetcher, e.Now = f, func() time.Time { return clock }
	for i := 0; i < 3; i++ {
		v := e.Validate(Request{Leaf: leaf.cert, At: testNow})
		if v.Status != Invalid || v.Reasons[0].Code != CodeRevoked {
			t.Fatalf("fetched CRL: %s %v", v.Status, v.Reasons)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("%d fetches while the CRL was fresh, want 1", hits.Load())
	}
	clock = testNow.Add(2 * time.Hour) // past nextUpdate: fetched again
	e.Validate(Request{Leaf: leaf.cert, At: testNow})
	if hits.Load() != 2 {
		t.Fatalf("%d fetches after nextUpdate, want 2", hits.Load())
	}
	// Oversized and unreachable distribution points.
	for _, url := range []string{srv.URL + "/big.crl", "http://127.0.0.1:1/none.crl"} {
		lt := tmpl("Leaf", false)
		lt.CRLDistributionPoints = []string{url}
		l := issue(t, root, lt, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v := e.Validate(Request{Leaf: l.cert, At: testNow, Context: ctx})
		cancel()
		if v.Status != Indeterminate || v.Reasons[0].Code != CodeRevocationUnknown {
			t.Fatalf("%s: %s %v", url, v.Status, v.Reasons)
		}
		if _, err := f.CRL(context.Background(), url); err == nil {
			t.Fatalf("%s: no error", url)
		}
	}
}
