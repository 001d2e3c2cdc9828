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
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// worstCase is the most expensive request found at the server's caps
// (docs/security.md "Work budget per verification"): every certificate is
// named "Mesh" and issued by "Mesh", so every intermediate is a candidate
// issuer of every other and of the leaf; the intermediates form a mesh of
// self-issued cross-certificates; one anchor in many verifies the mesh,
// the rest have keys of their own; the CRLs are signed by CRL signers
// inside the mesh, whose own paths need the same CRLs; the leaf and the
// intermediates carry many distribution points; revocation is required,
// so every path fails late and the next one is tried.
type worstCaseReq struct {
	engine *Engine
	req    Request
}

func buildWorstCase(t testing.TB, nAnchors, p521Decoys, nInter, nCRLs, leafDPs, interDPs int) worstCaseReq {
	t.Helper()
	name := pkix.Name{CommonName: "Mesh", Organization: []string{"pecet test"}}
	meshKey, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dps := func(n int, tag string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("ldap://dp%s%d/c", tag, i)
		}
		return out
	}
	mk := func(tpl *x509.Certificate, pub any, signer crypto.Signer, parent *x509.Certificate) *x509.Certificate {
		tpl.Subject = name
		if parent == nil {
			parent = tpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		return mustCert(t, der)
	}
	caT := func(n int) *x509.Certificate {
		c := tmpl("Mesh", true)
		c.CRLDistributionPoints = dps(n, "i")
		return c
	}
	// The anchor that verifies the mesh, and decoys with keys of their own.
	anchors := []*x509.Certificate{mk(caT(0), meshKey.Public(), meshKey, nil)}
	for len(anchors) < nAnchors {
		var k crypto.Signer = ecKey(t)
		if len(anchors) <= p521Decoys {
			// The most expensive key to verify with; distinct keys
			// defeat the signature cache.
			var err error
			if k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader); err != nil {
				t.Fatal(err)
			}
		}
		anchors = append(anchors, mk(caT(0), k.Public(), k, nil))
	}
	// CRL signers: intermediates of the mesh with keys of their own.
	var inter []*x509.Certificate
	var crlKeys []crypto.Signer
	for i := 0; i < nCRLs && len(inter) < nInter; i++ {
		k := ecKey(t)
		crlKeys = append(crlKeys, k)
		inter = append(inter, mk(caT(interDPs), k.Public(), meshKey, anchors[0]))
	}
	for len(inter) < nInter {
		inter = append(inter, mk(caT(interDPs), meshKey.Public(), meshKey, anchors[0]))
	}
	leafT := tmpl("Mesh", false)
	leafT.CRLDistributionPoints = dps(leafDPs, "l")
	leaf := mk(leafT, ecKey(t).Public(), meshKey, anchors[0])
	leaf.Subject = pkix.Name{CommonName: "Leaf"}
	var crls []*CRL
	for i := 0; i < nCRLs; i++ {
		issuerCert := inter[i%len(crlKeys)]
		// Each CRL revokes its own signer: the signer's path fails only
		// after its revocation was checked, at every depth.
		rl := &x509.RevocationList{Number: big.NewInt(int64(i + 1)), ThisUpdate: testNow.Add(-time.Hour), NextUpdate: testNow.Add(time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: issuerCert.SerialNumber, RevocationTime: testNow.Add(-2 * time.Hour), ReasonCode: 1}}}
		der, err := x509.CreateRevocationList(rand.Reader, rl, issuerCert, crlKeys[i%len(crlKeys)])
		if err != nil {
			t.Fatal(err)
		}
		crl, err := ParseCRL(der)
		if err != nil {
			t.Fatal(err)
		}
		crls = append(crls, crl)
	}
	e, err := NewEngine("p", &Policy{Name: "p", Revocation: RevocationRequire})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	return worstCaseReq{engine: e, req: Request{Leaf: leaf, Intermediates: inter, Anchors: anchors, CRLs: crls, At: testNow}}
}

func requestBytes(r Request) int {
	n := len(r.Leaf.Raw)
	for _, c := range append(append([]*x509.Certificate{}, r.Intermediates...), r.Anchors...) {
		n += len(c.Raw)
	}
	for _, c := range r.CRLs {
		n += len(c.RL.Raw)
	}
	return n
}

// TestWorstCaseBudget: the worst requests at the server's caps (1,024
// anchors, 64 certificates, 16 CRLs, 64 distribution points per
// certificate, revocation required) stop at the work budget with counted
// work within it and a PATH_BOUND verdict, in under 2 s without the race
// detector. Before the budget the first case ran for more than two minutes
// (docs/security.md "Work budget per verification").
func TestWorstCaseBudget(t *testing.T) {
	for _, tc := range []struct {
		name                                   string
		anchors, p521, inter, crls, ldps, idps int
		limit                                  string
	}{
		// CRLs signed by CRL signers whose own paths need them, at every
		// depth, over a mesh of same-named cross-certificates.
		{"crl signers in a mesh", 64, 0, 64, 16, 64, 64, "steps"},
		// Plus 1,024 same-named anchors, 200 with P-521 keys of their own.
		{"anchors at the new cap", 1024, 200, 64, 16, 64, 64, ""},
		{"mesh without CRL signers", 1024, 200, 64, 0, 64, 64, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := buildWorstCase(t, tc.anchors, tc.p521, tc.inter, tc.crls, tc.ldps, tc.idps)
			b := NewBudget(context.Background(), DefaultLimits)
			w.req.Context = WithBudget(context.Background(), b)
			start := time.Now()
			v := w.engine.Validate(w.req)
			took := time.Since(start)
			n := b.Counts()
			t.Logf("%d request bytes, %v: %s %v; work %+v", requestBytes(w.req), took, v.Status, v.Reasons, n)
			lim := DefaultLimits
			if n.SignatureChecks > lim.SignatureChecks || n.SignatureCost > lim.SignatureCost || n.Paths > lim.Paths || n.Steps > lim.Steps {
				t.Fatalf("work %+v beyond the limits %+v", n, lim)
			}
			if !errors.Is(b.Err(), ErrWorkBudget) {
				t.Fatalf("budget error %v, want ErrWorkBudget", b.Err())
			}
			if tc.limit != "" && !strings.Contains(b.Err().Error(), tc.limit) {
				t.Fatalf("budget error %v, want the %s limit", b.Err(), tc.limit)
			}
			if v.Status != Indeterminate || len(v.Reasons) != 1 || v.Reasons[0].Code != CodePathBound || !strings.Contains(v.Reasons[0].Message, "work budget") {
				t.Fatalf("verdict %s %v, want INDETERMINATE PATH_BOUND (work budget)", v.Status, v.Reasons)
			}
			if !raceEnabled && took > 2*time.Second {
				t.Fatalf("took %v, want at most 2 s", took)
			}
		})
	}
}

// TestBudgetDeadline: a call whose deadline passes stops in the
// path-building and revocation loops, well before the work budget.
func TestBudgetDeadline(t *testing.T) {
	w := buildWorstCase(t, 64, 0, 64, 16, 64, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	b := NewBudget(ctx, Limits{Steps: 1 << 30, SignatureChecks: 1 << 30, SignatureCost: 1 << 30, Paths: 1 << 30})
	w.req.Context = WithBudget(ctx, b)
	start := time.Now()
	v := w.engine.Validate(w.req)
	took := time.Since(start)
	if !errors.Is(b.Err(), context.DeadlineExceeded) {
		t.Fatalf("budget error %v, want the deadline", b.Err())
	}
	if v.Status != Indeterminate || v.Reasons[0].Code != CodePathBound || !strings.Contains(v.Reasons[0].Message, "deadline") {
		t.Fatalf("verdict %s %v", v.Status, v.Reasons)
	}
	if limit := 500 * time.Millisecond; !raceEnabled && took > limit {
		t.Fatalf("stopped after %v, want within %v of the deadline", took, limit)
	}
}

// TestSignatureCache: within one call, the same key over the same bytes is
// verified once, however many paths, CRL checks and validations need it.
func TestSignatureCache(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	inter := issue(t, root, tmpl("Inter", true), nil)
	leaf := issue(t, inter, tmpl("Leaf", false), nil)
	crls := []*CRL{root.crl(t, nil, testNow.Add(time.Hour)), inter.crl(t, nil, testNow.Add(time.Hour))}
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationRequire, CRLs: crls})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBudget(context.Background(), DefaultLimits)
	req := Request{Leaf: leaf.cert, Intermediates: []*x509.Certificate{inter.cert}, At: testNow, Context: WithBudget(context.Background(), b)}
	for i := range 3 {
		if v := e.Validate(req); v.Status != Valid {
			t.Fatalf("%s %v", v.Status, v.Reasons)
		}
		// Two certificate signatures and two CRL signatures.
		if n := b.Counts(); n.SignatureChecks != 4 {
			t.Fatalf("validation %d: %d signature checks, want 4 (%+v)", i+1, n.SignatureChecks, n)
		}
	}
	if b.Counts().CachedChecks == 0 {
		t.Fatal("no cached check")
	}
}

// TestRSAKeyCap: an RSA key above 8192 bits is never used to verify: the
// path through it fails with WEAK_ALGORITHM and no signature check is
// made with it; a leaf with such a key is refused too.
func TestRSAKeyCap(t *testing.T) {
	root := issue(t, nil, tmpl("Root", true), nil)
	bigKey := func(bits int) *rsa.PublicKey {
		// Random, odd, of the size: nobody holds the private key, and
		// verifying with it would only burn CPU.
		buf := make([]byte, bits/8)
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		buf[0] |= 0x80
		buf[len(buf)-1] |= 1
		return &rsa.PublicKey{N: new(big.Int).SetBytes(buf), E: 65537}
	}
	huge := bigKey(MaxRSAModulusBits + 64)
	signer := ecKey(t)
	// The intermediate carries the huge key; its child is signed with
	// another key (nobody holds the huge one), so verifying would only
	// burn CPU.
	der, err := x509.CreateCertificate(rand.Reader, tmpl("Huge", true), root.cert, huge, root.key)
	if err != nil {
		t.Fatal(err)
	}
	hugeCA := mustCert(t, der)
	parent := *hugeCA
	parent.PublicKey = nil // CreateCertificate would insist the keys match
	der, err = x509.CreateCertificate(rand.Reader, tmpl("Leaf", false), &parent, signer.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustCert(t, der)
	der, err = x509.CreateCertificate(rand.Reader, tmpl("Huge leaf", false), root.cert, huge, root.key)
	if err != nil {
		t.Fatal(err)
	}
	hugeLeaf := mustCert(t, der)
	e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{root.cert}, Revocation: RevocationOff})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		leaf  *x509.Certificate
		inter []*x509.Certificate
		want  string
	}{
		{"issuer key", leaf, []*x509.Certificate{hugeCA}, "was not verified"},
		{"leaf key", hugeLeaf, nil, "at most 8192 bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(context.Background(), DefaultLimits)
			v := e.Validate(Request{Leaf: tc.leaf, Intermediates: tc.inter, At: testNow, Context: WithBudget(context.Background(), b)})
			if v.Status != Invalid || !slices.ContainsFunc(v.Reasons, func(r Reason) bool {
				return r.Code == CodeWeakAlgorithm && strings.Contains(r.Message, tc.want)
			}) {
				t.Fatalf("%s %v", v.Status, v.Reasons)
			}
			// Only root's signature on the intermediate or leaf is checked.
			if n := b.Counts(); n.SignatureChecks > 1 {
				t.Fatalf("%d signature checks, want at most 1", n.SignatureChecks)
			}
		})
	}
	if err := (*Budget)(nil).CheckSignature(hugeCA, leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("nil budget: %v, want ErrKeyTooLarge", err)
	}
}
