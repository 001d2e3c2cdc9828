package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// oidArchiveTimeStampV3 is ETSI EN 319 122-1 5.5.3's archive-time-stamp-v3
// unsigned attribute; one without its ats-hash-index-v3, as here, is no
// proof pecet can check and is left aside (docs/archive.md "CAdES
// augmentation").
var oidArchiveTimeStampV3 = asn1.ObjectIdentifier{0, 4, 0, 1733, 2, 4}

// cadesLTA is a CAdES signature over data by a signer certified under the
// outside TSA's root, with a signature-time-stamp from that outside TSA,
// an archive-time-stamp-v3 attribute and an attribute nobody knows, as
// another product writes a CAdES-LTA file.
func cadesLTA(t *testing.T, ts *testtool.OutsideTSA, data []byte) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &devca.CA{Cert: ts.Issuing, Key: ts.IssuingKey}
	cert, err := ca.Issue("Jana Nováková", devca.CMSSign, key.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(data, key, []*x509.Certificate{cert, ts.Issuing}, signer.Options{
		Hash: crypto.SHA256, SigningTime: time.Now().UTC(),
		UnsignedAttributes: func(sigValue []byte) ([]signer.Attribute, error) {
			sum := sha256.Sum256(sigValue)
			tst := ts.Token(t, "sha256", sum[:])
			// The archive time-stamp's imprint is over more than the
			// signature value (EN 319 122-1 5.5.3); without a hash index
			// pecet cannot check it and does not use it.
			other := sha256.Sum256(append([]byte("archive"), sigValue...))
			ats := ts.Token(t, "sha256", other[:])
			unknown, _ := asn1.Marshal([]byte("something of another product"))
			return []signer.Attribute{
				{Type: ParseOID(signer.OIDSignatureTimeStampToken), Values: [][]byte{tst}},
				{Type: oidArchiveTimeStampV3, Values: [][]byte{ats}},
				{Type: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Values: [][]byte{unknown}},
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestVerifyOutsideTSA: signature time-stamps from a TSA other than
// pecet's are judged under the signature's own policy and per-call
// anchors, also inside CAdES-LTA files with attributes pecet does not
// verify (docs/security.md "Time-stamps").
func TestVerifyOutsideTSA(t *testing.T) {
	ts := testtool.NewOutsideTSA(t, testtool.OutsideTSAOptions{IssuingEKU: "emailProtection,clientAuth"})
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		e, err := policy.NewEngine("test",
			&policy.Policy{Name: "test", Revocation: policy.RevocationOff, AllowOverrides: policy.OverrideNames},
			&policy.Policy{Name: "qualified", Anchors: []*x509.Certificate{ts.Root}, Revocation: policy.RevocationOff})
		if err != nil {
			t.Fatal(err)
		}
		d.Validator, d.Policies = e, e
	}})
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	data := []byte("<PRIHL><employee dep=\"123\"/></PRIHL>")
	sig := cadesLTA(t, ts, data)
	for _, tc := range []struct {
		name string
		req  *pecetv1.VerifyRequest
		want pecetv1.Verdict_Status
	}{
		{"named policy", &pecetv1.VerifyRequest{Policy: "qualified"}, pecetv1.Verdict_VALID},
		{"per-call anchors", &pecetv1.VerifyRequest{Anchors: [][]byte{ts.Root.Raw}}, pecetv1.Verdict_VALID},
		{"issuing CA as per-call anchor", &pecetv1.VerifyRequest{Anchors: [][]byte{ts.Issuing.Raw}}, pecetv1.Verdict_VALID},
		{"no anchors", &pecetv1.VerifyRequest{}, pecetv1.Verdict_INDETERMINATE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Signature, tc.req.Detached = sig, &pecetv1.VerifyRequest_Content{Content: data}
			vr, err := sc.Verify(ctxT(t), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			v := vr.GetVerdict()
			if v.GetStatus() != tc.want {
				t.Fatalf("status %v, want %v: %v", v.GetStatus(), tc.want, v.GetReasons())
			}
			if tc.want == pecetv1.Verdict_VALID && (v.GetTimestampTime() == nil || !v.GetValidatedAt().AsTime().Equal(v.GetTimestampTime().AsTime())) {
				t.Fatalf("the signer must be judged at the outside token's time: %v", v)
			}
		})
	}
}
