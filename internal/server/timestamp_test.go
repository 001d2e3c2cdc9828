package server

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

func TestTimestampRPC(t *testing.T) {
	f := newFixture(t)
	tc := pecetv1.NewTimestampServiceClient(f.dial(t, "gateway"))
	sum := sha256.Sum256([]byte("filing"))
	nonce := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09}
	resp, err := tc.Timestamp(ctxT(t), &pecetv1.TimestampRequest{Digest: sum[:], Nonce: nonce, CertReq: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != pecetv1.TimestampResponse_GRANTED || resp.GetGenTime() == nil || len(resp.GetSerialNumber()) != 20 || resp.GetPolicy() != "1.2.3.4.1" {
		t.Fatalf("response %v", resp)
	}
	r, err := tsa.ParseResponse(resp.GetResponse())
	if err != nil || !bytes.Equal(r.Token, resp.GetToken()) {
		t.Fatalf("TimeStampResp: %v", err)
	}
	info, v, err := tsa.Verify(r.Token, tsa.VerifyOptions{Validator: f.srv.d.Validator, Data: []byte("filing")})
	if err != nil || v.Status != policy.Valid {
		t.Fatalf("verify: %v %v %v", err, v.Status, v.Reasons)
	}
	if !bytes.Equal(info.Nonce.Bytes(), nonce) || !info.GenTime.Equal(resp.GetGenTime().AsTime()) {
		t.Fatalf("nonce %x, time %v", info.Nonce.Bytes(), info.GenTime)
	}

	for _, c := range []struct {
		name string
		req  *pecetv1.TimestampRequest
		fail string
		code codes.Code
	}{
		{"digest length", &pecetv1.TimestampRequest{Digest: sum[:20]}, "badDataFormat", codes.OK},
		{"policy not accepted", &pecetv1.TimestampRequest{Digest: sum[:], Policy: "1.2.3.4.99"}, "unacceptedPolicy", codes.OK},
		{"SHA-384 digest of 32 bytes", &pecetv1.TimestampRequest{Digest: sum[:], Hash: pecetv1.HashAlgorithm_HASH_ALGORITHM_SHA384}, "badDataFormat", codes.OK},
		{"no digest", &pecetv1.TimestampRequest{}, "", codes.InvalidArgument},
		{"bad policy text", &pecetv1.TimestampRequest{Digest: sum[:], Policy: "tsa-policy"}, "", codes.InvalidArgument},
		{"unknown hash", &pecetv1.TimestampRequest{Digest: sum[:], Hash: 42}, "", codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := tc.Timestamp(ctxT(t), c.req)
			if status.Code(err) != c.code {
				t.Fatalf("code %v, want %v", err, c.code)
			}
			if c.code != codes.OK {
				return
			}
			if resp.GetStatus() != pecetv1.TimestampResponse_REJECTION || resp.GetFailureInfo() != c.fail || resp.GetStatusText() == "" {
				t.Fatalf("response %v", resp)
			}
			if r, err := tsa.ParseResponse(resp.GetResponse()); err != nil || r.Fail.String() != c.fail {
				t.Fatalf("DER says %v (%v)", r, err)
			}
		})
	}
}

// TestSignWithTimestamp: CAdES-T through the service; Verify checks the
// token and judges the signer's chain at the time-stamp's time.
func TestSignWithTimestamp(t *testing.T) {
	f := newFixture(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	data := []byte("<PRIHL><employee/></PRIHL>")
	resp, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}, Timestamp: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTimestampTime() == nil {
		t.Fatal("no timestamp time in the response")
	}
	sd, err := signer.Parse(resp.GetSignature())
	if err != nil {
		t.Fatal(err)
	}
	if ua := sd.SignerInfos[0].UnsignedAttrs; len(ua) != 1 || ua[0].Type.String() != signer.OIDSignatureTimeStampToken {
		t.Fatalf("unsigned attributes %v", ua)
	}
	vr, err := sc.Verify(ctxT(t), &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}})
	if err != nil {
		t.Fatal(err)
	}
	v := vr.GetVerdict()
	if v.GetStatus() != pecetv1.Verdict_VALID || v.GetTimestampTime() == nil {
		t.Fatalf("verdict %v", v)
	}
	if !v.GetValidatedAt().AsTime().Equal(v.GetTimestampTime().AsTime()) || !v.GetTimestampTime().AsTime().Equal(resp.GetTimestampTime().AsTime()) {
		t.Errorf("judged at %v, time-stamp %v", v.GetValidatedAt().AsTime(), v.GetTimestampTime().AsTime())
	}

	// A time-stamp over another signature value: the same data signed
	// again with the same key, carrying the token of another signature as
	// its signature time-stamp (built with signer's UnsignedAttributes, so
	// the DER is well-formed whatever the tokens' lengths), and Verify says
	// so.
	other, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("other")}, Timestamp: true})
	if err != nil {
		t.Fatal(err)
	}
	osd, err := signer.Parse(other.GetSignature())
	if err != nil {
		t.Fatal(err)
	}
	key, err := f.store.Signer(ctxT(t), "client-sign", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatal(err)
	}
	// The control: the same construction with a token over its own
	// signature value is VALID, so the refusal below is the mismatch.
	for _, c := range []struct {
		name  string
		token func(sigValue []byte) []byte
		valid bool
	}{
		{"own token", func(sigValue []byte) []byte {
			sum := sha256.Sum256(sigValue)
			tok, _, err := f.srv.d.TSA.Token(ctxT(t), sum[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, true},
		{"another signature's token", func([]byte) []byte { return osd.SignerInfos[0].UnsignedAttrs[0].Values[0] }, false},
	} {
		sig, err := signer.Sign(data, key, key.Version().Chain, signer.Options{UnsignedAttributes: func(sigValue []byte) ([]signer.Attribute, error) {
			return []signer.Attribute{{Type: ParseOID(signer.OIDSignatureTimeStampToken), Values: [][]byte{c.token(sigValue)}}}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		vr, err = sc.Verify(ctxT(t), &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: data}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v := vr.GetVerdict()
		if valid := v.GetStatus() == pecetv1.Verdict_VALID && v.GetTimestampTime() != nil; valid != c.valid {
			t.Fatalf("%s: verdict %v, want valid %v", c.name, v, c.valid)
		}
	}

	// --at still wins over the time-stamp.
	at := time.Now().AddDate(10, 0, 0)
	vr, err = sc.Verify(ctxT(t), &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}, At: timestamppb.New(at)})
	if err != nil || vr.GetVerdict().GetStatus() != pecetv1.Verdict_INVALID {
		t.Fatalf("judged in 10 years: %v %v", err, vr.GetVerdict())
	}
}

func TestHTTPTSA(t *testing.T) {
	f := newFixture(t)
	hs := httptest.NewServer(f.srv.HTTP())
	defer hs.Close()
	sum := sha256.Sum256([]byte("x"))
	req, _ := tsa.NewRequest(sum[:], crypto.SHA256, true, true)
	body, _ := req.Marshal()
	resp, err := http.Post(hs.URL+"/tsa", tsa.ContentTypeQuery, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	r, err := tsa.ParseResponse(b.Bytes())
	if resp.StatusCode != 200 || err != nil || r.Status != tsa.StatusGranted {
		t.Fatalf("HTTP %d: %v %v", resp.StatusCode, err, r)
	}
	for _, c := range []struct {
		method, ctype string
		want          int
	}{{"GET", "", 405}, {"POST", "text/plain", 415}} {
		req, _ := http.NewRequest(c.method, hs.URL+"/tsa", bytes.NewReader(body))
		req.Header.Set("Content-Type", c.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.ctype, resp.StatusCode, c.want)
		}
	}
	// The metrics count it.
	mr, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Body.Close()
	var m bytes.Buffer
	_, _ = m.ReadFrom(mr.Body)
	if !bytes.Contains(m.Bytes(), []byte(`pecet_tsa_responses_total{fail_info="",status="granted",transport="http"} 1`)) {
		t.Error("no TSA metric")
	}
}

// TestReadinessFollowsTSAClock: a clock off the reference makes /readyz
// fail and the TSA answer timeNotAvailable.
func TestReadinessFollowsTSAClock(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	offset := dir + "/offset"
	write := func(s string) {
		if err := os.WriteFile(offset, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("0.002")
	guard := &tsa.ClockGuard{Ref: tsa.OffsetFile{Path: offset}, Accuracy: time.Second}
	a, err := tsa.New(tsa.Config{Key: TSAKey(f.store, "tsa"), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}, Accuracy: time.Second, Clock: guard})
	if err != nil {
		t.Fatal(err)
	}
	d := f.srv.d
	d.TSA = a
	hs := httptest.NewServer(New(d).HTTP())
	defer hs.Close()
	ready := func() int {
		resp, err := http.Get(hs.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		offset string
		ready  int
		fail   tsa.FailureInfo
	}{{"0.002", 200, tsa.FailNone}, {"-3.5", 503, tsa.FailTimeNotAvailable}, {"0", 200, tsa.FailNone}} {
		write(c.offset)
		_ = guard.Check(ctxT(t))
		if got := ready(); got != c.ready {
			t.Errorf("offset %s: /readyz %d, want %d", c.offset, got, c.ready)
		}
		sum := sha256.Sum256([]byte("x"))
		req, _ := tsa.NewRequest(sum[:], crypto.SHA256, false, false)
		der, res := a.Stamp(ctxT(t), req)
		if res.Fail != c.fail || len(der) == 0 {
			t.Errorf("offset %s: fail %v, want %v", c.offset, res.Fail, c.fail)
		}
	}
}
