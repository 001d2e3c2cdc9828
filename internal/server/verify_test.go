package server

import (
	"bytes"
	"crypto/sha256"
	"testing"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// TestVerifyAttachedWithOtherContent: an attached signature over A sent
// with content B (or B's digest) is INVALID with CONTENT_MISMATCH, over
// real gRPC and a SoftHSM key; the response says the verdict is about the
// embedded content and returns it (docs/security.md, "Attached signatures
// and the content the caller supplies").
func TestVerifyAttachedWithOtherContent(t *testing.T) {
	fx := newFixture(t)
	sc := pecetv1.NewSignServiceClient(fx.dial(t, "client"))
	a, b := []byte("<PRIHL>A</PRIHL>"), []byte("<PRIHL>B</PRIHL>")
	sumA, sumB := sha256.Sum256(a), sha256.Sum256(b)
	signed, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Attached: true, Input: &pecetv1.SignRequest_Data{Data: a}})
	if err != nil {
		t.Fatal(err)
	}
	sig := signed.GetSignature()
	tests := []struct {
		name     string
		content  []byte // set: the request's content
		digest   []byte // set: the request's content_digest
		want     pecetv1.Verdict_Status
		compared pecetv1.VerifyResponse_ContentSource
	}{
		{"nothing given", nil, nil, pecetv1.Verdict_VALID, pecetv1.VerifyResponse_CONTENT_SOURCE_UNSPECIFIED},
		{"the same content", a, nil, pecetv1.Verdict_VALID, pecetv1.VerifyResponse_GIVEN_CONTENT},
		{"other content", b, nil, pecetv1.Verdict_INVALID, pecetv1.VerifyResponse_GIVEN_CONTENT},
		{"its digest", nil, sumA[:], pecetv1.Verdict_VALID, pecetv1.VerifyResponse_GIVEN_DIGEST},
		{"another digest", nil, sumB[:], pecetv1.Verdict_INVALID, pecetv1.VerifyResponse_GIVEN_DIGEST},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &pecetv1.VerifyRequest{Signature: sig}
			if tc.content != nil {
				req.Detached = &pecetv1.VerifyRequest_Content{Content: tc.content}
			}
			if tc.digest != nil {
				req.Detached = &pecetv1.VerifyRequest_ContentDigest{ContentDigest: tc.digest}
			}
			resp, err := sc.Verify(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			v := resp.GetVerdict()
			if v.GetStatus() != tc.want {
				t.Fatalf("got %s %v, want %s", v.GetStatus(), v.GetReasons(), tc.want)
			}
			if tc.want == pecetv1.Verdict_INVALID && (len(v.GetReasons()) != 1 || v.GetReasons()[0].GetCode() != "CONTENT_MISMATCH") {
				t.Errorf("reasons %v, want only CONTENT_MISMATCH", v.GetReasons())
			}
			if resp.GetContentSource() != pecetv1.VerifyResponse_EMBEDDED || resp.GetCompared() != tc.compared ||
				!bytes.Equal(resp.GetContent(), a) || !bytes.Equal(resp.GetContentDigest(), sumA[:]) || resp.GetContentDigestAlgorithm() != "SHA-256" {
				t.Errorf("content %s compared %s %q %x %s", resp.GetContentSource(), resp.GetCompared(), resp.GetContent(), resp.GetContentDigest(), resp.GetContentDigestAlgorithm())
			}
		})
	}

	// A detached signature: the response names the caller's content and
	// carries no content back.
	det, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: a}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sc.Verify(ctxT(t), &pecetv1.VerifyRequest{Signature: det.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: a}})
	if err != nil || resp.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || resp.GetContentSource() != pecetv1.VerifyResponse_GIVEN_CONTENT ||
		resp.GetContent() != nil || !bytes.Equal(resp.GetContentDigest(), sumA[:]) {
		t.Fatalf("detached: %v %v", resp, err)
	}
}
