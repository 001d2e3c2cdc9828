package server

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestVerificationBudget: the worst request at the caps (1,024 anchors, 64
// certificates, 16 CRLs, revocation required) is refused with
// ResourceExhausted and a message a person can act on, quickly; the same
// anchors with an ordinary chain still get a verdict (docs/security.md
// "Work budget per verification").
func TestVerificationBudget(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	w := testtool.BuildWorstCase(t, time.Now(), testtool.WorstCaseSize{Anchors: 1024, P521: 100, Intermediates: 63, CRLs: 16, LeafDPs: 64, InterDPs: 64})
	der := func(cs ...[]byte) [][]byte { return cs }
	chain := der(w.Leaf.Raw)
	for _, c := range w.Intermediates {
		chain = append(chain, c.Raw)
	}
	var anchors [][]byte
	for _, a := range w.Anchors {
		anchors = append(anchors, a.Raw)
	}
	pc := pecetv1.NewPolicyServiceClient(cc)
	start := time.Now()
	_, err := pc.ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{
		Chain: chain, Anchors: anchors, Crls: w.CRLs, Policy: "strict", Revocation: pecetv1.RevocationMode_REQUIRE,
	})
	took := time.Since(start)
	t.Logf("%d bytes: %v in %v", w.Bytes(), err, took)
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "work budget") || !strings.Contains(st.Message(), "server-side policy") {
		t.Fatalf("got %v, want ResourceExhausted naming the work budget", err)
	}

	// An ordinary chain with the 1,024 anchors and the CRLs: a verdict.
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pc.ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{
		Chain: der(k.Versions[0].Certificate().Raw), Anchors: anchors, Crls: w.CRLs, Purpose: pecetv1.Purpose_SIGNING, Policy: "strict", Revocation: pecetv1.RevocationMode_OFF,
	})
	if err != nil || resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
		t.Fatalf("ordinary chain with 1,024 anchors: %v %v", resp.GetVerdict(), err)
	}
	data := []byte("<PRIHL/>")
	sig, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	vr, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{
		Signature: sig.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}, Anchors: anchors, Crls: w.CRLs, Policy: "strict", Revocation: pecetv1.RevocationMode_OFF,
	})
	if err != nil || vr.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
		t.Fatalf("Verify with 1,024 anchors: %v %v", vr.GetVerdict(), err)
	}
	// Above the anchor cap: a precise refusal.
	_, err = pc.ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{Chain: chain[:1], Anchors: make([][]byte, maxRequestAnchors+1), Policy: "strict"})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "server-side policy") {
		t.Fatalf("too many anchors: %v", err)
	}
}

// TestTrustedListAnchors: the certificates of the Czech trusted list (139,
// 71 of them PostSignum's) are accepted as per-call anchors, and a
// PostSignum time-stamping unit's certificate validates to its CA among
// them; the old cap of 64 anchors refused them.
func TestTrustedListAnchors(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	certs := testtool.TrustedListCertificates(t, "CZ.xml")
	var leaf []byte
	var anchors [][]byte
	postSignum := 0
	for _, c := range certs {
		if strings.Contains(c.Subject.String(), "PostSignum") {
			postSignum++
		}
		if c.Subject.CommonName == "PostSignum TSA - TSU 7" && leaf == nil {
			leaf = c.Raw
			continue
		}
		anchors = append(anchors, c.Raw)
	}
	if postSignum < 71 || leaf == nil {
		t.Fatalf("%d PostSignum certificates, TSU 7 found: %v", postSignum, leaf != nil)
	}
	resp, err := pecetv1.NewPolicyServiceClient(cc).ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{
		Chain: [][]byte{leaf}, Anchors: anchors, Revocation: pecetv1.RevocationMode_OFF, Policy: "strict",
		At: timestamppb.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		t.Fatalf("%d anchors: %v", len(anchors), err)
	}
	v := resp.GetVerdict()
	if v.GetStatus() != pecetv1.Verdict_VALID || len(v.GetChain()) != 2 {
		t.Fatalf("%d anchors: %v", len(anchors), v)
	}
	issuer, err := x509.ParseCertificate(v.GetChain()[1])
	if err != nil || issuer.Subject.CommonName != "PostSignum Qualified CA 5" {
		t.Fatalf("anchor %v %v", issuer.Subject, err)
	}
}
