package policy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// worstCase is testtool.BuildWorstCase as a policy request under a policy
// with revocation required.
func worstCase(t testing.TB, size testtool.WorstCaseSize) (*Engine, Request, int) {
	t.Helper()
	w := testtool.BuildWorstCase(t, testNow, size)
	var crls []*CRL
	for _, der := range w.CRLs {
		crl, err := ParseCRL(der)
		if err != nil {
			t.Fatal(err)
		}
		crls = append(crls, crl)
	}
	e, err := NewEngine("p", &Policy{Name: "p", Revocation: RevocationRequire, AllowOverrides: OverrideNames})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return testNow }
	return e, Request{Leaf: w.Leaf, Intermediates: w.Intermediates, Anchors: w.Anchors, CRLs: crls, At: testNow}, w.Bytes()
}

// TestWorstCaseBudget: the worst requests at the server's caps (1,024
// anchors, 64 certificates, 16 CRLs, 64 distribution points per
// certificate, revocation required) stop at the work budget with counted
// work within it and a PATH_BOUND verdict, in under 2 s without the race
// detector. Before the budget the first case ran for more than two minutes
// (docs/security.md "Work budget per verification").
func TestWorstCaseBudget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  testtool.WorstCaseSize
		limit string
	}{
		// CRLs signed by CRL signers whose own paths need them, at every
		// depth, over a mesh of same-named cross-certificates.
		{"crl signers in a mesh", testtool.WorstCaseSize{Anchors: 64, Intermediates: 63, CRLs: 16, LeafDPs: 64, InterDPs: 64}, "steps"},
		// Plus 1,024 same-named anchors, 200 with P-521 keys of their own.
		{"anchors at the new cap", testtool.WorstCaseSize{Anchors: 1024, P521: 200, Intermediates: 63, CRLs: 16, LeafDPs: 64, InterDPs: 64}, ""},
		{"mesh without CRL signers", testtool.WorstCaseSize{Anchors: 1024, P521: 200, Intermediates: 63, LeafDPs: 64, InterDPs: 64}, "signature checks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, req, size := worstCase(t, tc.size)
			b := NewBudget(context.Background(), DefaultLimits)
			req.Context = WithBudget(context.Background(), b)
			start := time.Now()
			v := e.Validate(req)
			took := time.Since(start)
			n := b.Counts()
			t.Logf("%d request bytes, %v: %s %v; work %+v", size, took, v.Status, v.Reasons, n)
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
	e, req, _ := worstCase(t, testtool.WorstCaseSize{Anchors: 64, Intermediates: 63, CRLs: 16, LeafDPs: 64, InterDPs: 64})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	b := NewBudget(ctx, Limits{Steps: 1 << 30, SignatureChecks: 1 << 30, SignatureCost: 1 << 30, Paths: 1 << 30})
	req.Context = WithBudget(ctx, b)
	start := time.Now()
	v := e.Validate(req)
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
	e.Now = func() time.Time { return testNow }
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
	// An RSA signature, so that without the cap crypto/rsa would really
	// compute with the huge modulus.
	signer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
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

// TestTrustedListAnchorsIndexed: with the 138 other certificates of the
// Czech trusted list as anchors, a PostSignum time-stamping unit validates
// with one signature check: anchors are looked up by subject, not tried in
// turn.
func TestTrustedListAnchorsIndexed(t *testing.T) {
	var leaf *x509.Certificate
	var anchors []*x509.Certificate
	for _, c := range testtool.TrustedListCertificates(t, "CZ.xml") {
		if c.Subject.CommonName == "PostSignum TSA - TSU 7" && leaf == nil {
			leaf = c
			continue
		}
		anchors = append(anchors, c)
	}
	if leaf == nil || len(anchors) < 100 {
		t.Fatalf("leaf %v, %d anchors", leaf != nil, len(anchors))
	}
	e, err := NewEngine("p", &Policy{Name: "p", Revocation: RevocationOff, AllowOverrides: OverrideNames})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBudget(context.Background(), DefaultLimits)
	v := e.Validate(Request{Leaf: leaf, Anchors: anchors, At: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Context: WithBudget(context.Background(), b)})
	if v.Status != Valid || len(v.Chain) != 2 || v.Chain[1].Subject.CommonName != "PostSignum Qualified CA 5" {
		t.Fatalf("%s %v", v.Status, v.Reasons)
	}
	if n := b.Counts(); n.SignatureChecks != 1 || n.Steps > 2 {
		t.Fatalf("work %+v, want one signature check", n)
	}
}
