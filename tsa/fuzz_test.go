package tsa

import (
	"context"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// FuzzParseRequest: any input gives a request or a *Rejection, never a
// panic, and an accepted request re-encodes to a request with the same fields (the parser
// is strict, so it keeps every field). The Authority then answers
// it with a response that parses. Seeds: real `openssl ts -query` outputs
// (testdata/make-fuzz-seeds.sh).
func FuzzParseRequest(f *testing.F) {
	fx := newFixture(f, nil)
	for _, name := range []string{"openssl-cert.tsq", "openssl-nocert.tsq"} {
		if b, err := os.ReadFile("testdata/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := ParseRequest(in)
		if err != nil {
			if _, ok := err.(*Rejection); !ok { //nolint:errorlint // the contract is an unwrapped *Rejection
				t.Fatalf("error %T is not a *Rejection", err)
			}
		} else if req.Hash != 0 && !req.HasExtensions {
			again, err := req.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			// Not byte-equal: absent hash parameters come back as NULL.
			back, err := ParseRequest(again)
			if err != nil {
				t.Fatalf("re-encoded request does not parse: %v", err)
			}
			if string(back.Digest) != string(req.Digest) || back.CertReq != req.CertReq ||
				(req.Nonce == nil) != (back.Nonce == nil) || (req.Nonce != nil && req.Nonce.Cmp(back.Nonce) != 0) {
				t.Fatalf("round trip changed the request: %+v → %+v", req, back)
			}
		}
		resp, _ := fx.a.Respond(context.Background(), in)
		if _, err := ParseResponse(resp); err != nil {
			t.Fatalf("our response does not parse: %v", err)
		}
	})
}

// FuzzParseToken: responses and tokens from anywhere parse or fail with
// an error, and Verify never panics. Seeds: responses from OpenSSL acting
// as a TSA (testdata/make-fuzz-seeds.sh) and from pecet.
func FuzzParseToken(f *testing.F) {
	fx := newFixture(f, nil)
	r, _ := fx.a.Stamp(context.Background(), sha256Req(f, "seed"))
	f.Add(r)
	data, _ := os.ReadFile("testdata/openssl-data.xml")
	f.Fuzz(func(t *testing.T, in []byte) {
		tok := in
		if IsResponse(in) {
			resp, err := ParseResponse(in)
			if err != nil || resp.Token == nil {
				return
			}
			tok = resp.Token
		}
		_, _ = ParseTSTInfo(in)
		_, _, _ = Verify(tok, VerifyOptions{Validator: fx.validator(), Data: data})
	})
}

// TestVerifyOpenSSLToken: tokens OpenSSL issued as a TSA verify, with the
// certificate embedded or configured, and fail for other data.
func TestVerifyOpenSSLToken(t *testing.T) {
	ca, tsaCert := testtool.ReadCert(t, "testdata/openssl-ca.pem"), testtool.ReadCert(t, "testdata/openssl-tsa.pem")
	data, err := os.ReadFile("testdata/openssl-data.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"openssl-cert.tsr", "openssl-nocert.tsr"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile("testdata/" + name)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := ParseResponse(b)
			if err != nil || resp.Status != StatusGranted {
				t.Fatalf("%v %+v", err, resp)
			}
			opts := VerifyOptions{Validator: engineFor(t, policy.RevocationOff, nil, ca), Data: data, TSACertificates: []*x509.Certificate{tsaCert}}
			info, v, err := Verify(resp.Token, opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != policy.Valid || info.Accuracy != 1500*time.Millisecond || info.TSAName == nil {
				t.Fatalf("verdict %v %v, info %+v", v.Status, v.Reasons, info)
			}
			opts.Data = []byte("other")
			if _, v, _ := Verify(resp.Token, opts); v.Status != policy.Invalid {
				t.Fatalf("other data: %v", v.Status)
			}
		})
	}
}
