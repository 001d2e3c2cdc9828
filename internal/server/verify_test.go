package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/signer"
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

// TestVerifyTimestampFlood: a signature carrying 64 signature-time-stamp
// attributes of 64 tokens each (within the attribute bounds) is refused
// with ResourceExhausted before any token is verified; before, the
// server's real time-stamp verifier ran 4096 times for one request
// (docs/reliability.md, "Limits").
func TestVerifyTimestampFlood(t *testing.T) {
	fx := newFixture(t)
	sc := pecetv1.NewSignServiceClient(fx.dial(t, "client"))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flood"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(certDER)
	tsOID := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 14}
	token := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	sig, err := signer.Sign([]byte("x"), key, []*x509.Certificate{cert}, signer.Options{Attached: true,
		UnsignedAttributes: func([]byte) ([]signer.Attribute, error) {
			attrs := make([]signer.Attribute, 64)
			for i := range attrs {
				attrs[i] = signer.Attribute{Type: tsOID, Values: bytes.Split(bytes.Repeat(append(token, ','), 64), []byte{','})[:64]}
			}
			return attrs, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = sc.Verify(ctxT(t), &pecetv1.VerifyRequest{Signature: sig})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("got %v, want ResourceExhausted", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the refusal took %v", took)
	}
}
