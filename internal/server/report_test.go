package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/reporttest"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/report"
)

// reportObjects maps the SHA-256 of each validation object of a report
// to its ETSI object type.
func reportObjects(r *report.ValidationReport) map[[32]byte]string {
	out := map[[32]byte]string{}
	if r.Objects == nil {
		return out
	}
	for _, o := range r.Objects.Objects {
		var d [32]byte
		copy(d[:], o.Representation.DigestAlgAndValue.Value)
		out[d] = strings.TrimPrefix(o.ObjectType, report.ObjectTypePrefix)
	}
	return out
}

// strangerKey makes a signing key on the fixture's SoftHSM token whose
// certificate comes from a CA no policy trusts.
func strangerKey(t *testing.T, f *fixture, alias string) {
	t.Helper()
	ctx := context.Background()
	other, err := devca.NewCA("stranger CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.store.CreateKey(ctx, alias, keystore.PurposeSign, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := other.Issue(alias, devca.CMSSign, v.Public, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(ctx, alias, v.Version, []*x509.Certificate{cert, other.Cert}); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyValidationReport: Verify with report returns an ETSI TS
// 119 102-2 report for VALID, INVALID (digest mismatch, revoked) and
// INDETERMINATE (no chain; revocation unknown without a POE) signatures
// made with SoftHSM keys, naming the CRL and time-stamp used by digest,
// never holding the content.
func TestVerifyValidationReport(t *testing.T) {
	f := newFixture(t)
	strangerKey(t, f, "stranger-sign")
	cc := f.dial(t, "wide-client")
	ctx := ctxT(t)
	sc := pecetv1.NewSignServiceClient(cc)
	data := []byte("<PRIHL>the content, never in a report</PRIHL>")
	sign := func(key string, stamp bool) []byte {
		t.Helper()
		r, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: key, Input: &pecetv1.SignRequest_Data{Data: data}, Timestamp: stamp})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetSignature()
	}
	plain, stamped, stranger := sign("client-sign", false), sign("client-sign", true), sign("stranger-sign", false)
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	leaf := k.Versions[0].Certificate()
	now := time.Now()
	crl := func(revoked bool) []byte {
		rl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
		if revoked {
			rl.RevokedCertificateEntries = []x509.RevocationListEntry{{SerialNumber: leaf.SerialNumber, RevocationTime: now.Add(-10 * time.Minute), ReasonCode: 1}}
		}
		der, err := x509.CreateRevocationList(rand.Reader, rl, f.ca.Cert, f.ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	goodCRL, badCRL := crl(false), crl(true)
	tests := []struct {
		name    string
		req     *pecetv1.VerifyRequest
		main    string
		sub     string
		proof   string
		objects map[string]int // ETSI object type -> count
		want    [][]byte       // objects that must be named by digest
	}{
		{"valid, CRL, caller's time", &pecetv1.VerifyRequest{Signature: plain, Detached: &pecetv1.VerifyRequest_Content{Content: data}, Policy: "strict",
			Crls: [][]byte{goodCRL}, At: timestamppb.New(now)}, report.TotalPassed, "", report.POEProvided,
			map[string]int{"certificate": 2, "CRL": 1}, [][]byte{goodCRL, leaf.Raw, f.ca.Cert.Raw}},
		{"valid, time-stamped", &pecetv1.VerifyRequest{Signature: stamped, Detached: &pecetv1.VerifyRequest_Content{Content: data}},
			report.TotalPassed, "", report.POEValidation, map[string]int{"certificate": 3, "timestamp": 1}, [][]byte{leaf.Raw}},
		{"invalid, digest mismatch", &pecetv1.VerifyRequest{Signature: plain, Detached: &pecetv1.VerifyRequest_Content{Content: []byte("other")}},
			report.TotalFailed, "HASH_FAILURE", report.POEValidation, map[string]int{"certificate": 2}, nil},
		{"invalid, revoked", &pecetv1.VerifyRequest{Signature: plain, Detached: &pecetv1.VerifyRequest_Content{Content: data}, Policy: "strict",
			Crls: [][]byte{badCRL}, At: timestamppb.New(now)}, report.TotalFailed, "REVOKED", report.POEProvided,
			map[string]int{"certificate": 2, "CRL": 1}, [][]byte{badCRL}},
		{"indeterminate, no chain", &pecetv1.VerifyRequest{Signature: stranger, Detached: &pecetv1.VerifyRequest_Content{Content: data}},
			report.Indeterminate, "NO_CERTIFICATE_CHAIN_FOUND", report.POEValidation, map[string]int{"certificate": 1}, nil},
		{"indeterminate, revocation unknown, no POE", &pecetv1.VerifyRequest{Signature: plain, Detached: &pecetv1.VerifyRequest_Content{Content: data}, Policy: "strict"},
			report.Indeterminate, "TRY_LATER", report.POEValidation, map[string]int{"certificate": 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Report = true
			resp, err := sc.Verify(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(resp.GetReport(), data) {
				t.Fatal("the report holds the signed content")
			}
			r := reporttest.CheckValidationReport(t, resp.GetReport())
			s := r.Reports[0]
			if s.Status.MainIndication != tc.main {
				t.Fatalf("main indication %s, want %s (verdict %v)", s.Status.MainIndication, tc.main, resp.GetVerdict())
			}
			if tc.sub != "" && !containsString(s.Status.SubIndications, report.SubIndicationPrefix+tc.sub) {
				t.Errorf("sub-indications %v lack %s", s.Status.SubIndications, tc.sub)
			}
			if got := s.TimeInfo.BestSignatureTime.TypeOfProof; got != tc.proof {
				t.Errorf("best signature time proof %s, want %s", got, tc.proof)
			}
			if tc.proof == report.POEValidation && tc.objects["timestamp"] == 1 {
				if s.TimeInfo.BestSignatureTime.Object == nil || s.TimeInfo.BestSignatureTime.Time != resp.GetVerdict().GetTimestampTime().AsTime().UTC().Format(time.RFC3339Nano) {
					t.Errorf("best signature time %+v is not the time-stamp's", s.TimeInfo.BestSignatureTime)
				}
			}
			objs := reportObjects(r)
			count := map[string]int{}
			for _, typ := range objs {
				count[typ]++
			}
			for typ, n := range tc.objects {
				if count[typ] != n {
					t.Errorf("%d %s objects, want %d (%v)", count[typ], typ, n, count)
				}
			}
			for _, b := range tc.want {
				if _, ok := objs[sha256.Sum256(b)]; !ok {
					t.Errorf("an object used is not named by its digest")
				}
			}
			if s.SignerInformation == nil || s.SignersDocument == nil || s.SignatureIdentifier == nil {
				t.Errorf("signer, document or signature identifier missing")
			}
			if v := resp.GetVerdict(); v.GetPolicy() != "" && (s.Constraints == nil || s.Constraints.Policy.PolicyName != v.GetPolicy()) {
				t.Errorf("policy %q not in the report", v.GetPolicy())
			}
		})
	}
	// Without the request field there is no report.
	resp, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: plain, Detached: &pecetv1.VerifyRequest_Content{Content: data}})
	if err != nil || resp.GetReport() != nil {
		t.Fatalf("report without asking: %v %d bytes", err, len(resp.GetReport()))
	}
}

// TestValidateCertificateValidationReport: ValidateCertificate with report
// returns the report on the certificate: VALID with its chain, INVALID
// (revoked, with the CRL; unreadable), INDETERMINATE (no chain).
func TestValidateCertificateValidationReport(t *testing.T) {
	f := newFixture(t)
	strangerKey(t, f, "stranger-sign")
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	leaf := k.Versions[0].Certificate()
	sk, err := f.store.GetKey(ctx, "stranger-sign")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	badCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf.SerialNumber, RevocationTime: now.Add(-10 * time.Minute), ReasonCode: 1}}}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	pc := pecetv1.NewPolicyServiceClient(cc)
	tests := []struct {
		name  string
		req   *pecetv1.ValidateCertificateRequest
		main  string
		sub   string
		chain bool
		want  [][]byte
	}{
		{"valid", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}}, report.TotalPassed, "", true, [][]byte{leaf.Raw, f.ca.Cert.Raw}},
		{"revoked", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Policy: "strict", Crls: [][]byte{badCRL}}, report.TotalFailed, "REVOKED", true, [][]byte{badCRL}},
		{"unreadable", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{[]byte("junk")}}, report.TotalFailed, "FORMAT_FAILURE", false, [][]byte{[]byte("junk")}},
		{"no chain", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{sk.Versions[0].Certificate().Raw}}, report.Indeterminate, "NO_CERTIFICATE_CHAIN_FOUND", false,
			[][]byte{sk.Versions[0].Certificate().Raw}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Report = true
			resp, err := pc.ValidateCertificate(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			r := reporttest.CheckValidationReport(t, resp.GetReport())
			s := r.Reports[0]
			if s.Status.MainIndication != tc.main || (tc.sub != "" && !containsString(s.Status.SubIndications, report.SubIndicationPrefix+tc.sub)) {
				t.Fatalf("indications %s %v, want %s %s", s.Status.MainIndication, s.Status.SubIndications, tc.main, tc.sub)
			}
			hasChain := len(s.Status.Associated) > 0 && s.Status.Associated[0].CertificateChain != nil
			if hasChain != tc.chain {
				t.Errorf("chain in the report: %v, want %v", hasChain, tc.chain)
			}
			if s.SignatureIdentifier != nil || s.SignerInformation == nil {
				t.Errorf("a certificate report names the certificate, not a signature")
			}
			objs := reportObjects(r)
			for _, b := range tc.want {
				if _, ok := objs[sha256.Sum256(b)]; !ok {
					t.Errorf("an object used is not named by its digest")
				}
			}
		})
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestVerifyValidationReportNoPOE: under a policy whose ETSI TS 119 312
// suite ended EC keys before now, a signature without a time-stamp has no
// proof of existence from before that end: INDETERMINATE
// (CRYPTO_CONSTRAINTS_FAILURE_NO_POE), best signature time the validation
// time with proof type "validation" and no POE object.
func TestVerifyValidationReportNoPOE(t *testing.T) {
	suite, err := policy.ParseAlgorithmSuite([]byte(`<SecuritySuitabilityPolicy><Algorithm><AlgorithmIdentifier><Name>ecPublicKey</Name>` +
		`<ObjectIdentifier>1.2.840.10045.2.1</ObjectIdentifier></AlgorithmIdentifier><Evaluation><Validity><Start>2000-01-01</Start><End>2020-01-01</End></Validity></Evaluation></Algorithm></SecuritySuitabilityPolicy>`))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		info, err := d.Policies.(*policy.Engine).Describe("test", time.Now())
		if err != nil || len(info.Anchors) == 0 {
			t.Fatalf("fixture policy: %v", err)
		}
		e, err := policy.NewEngine("test",
			&policy.Policy{Name: "test", Anchors: []*x509.Certificate{info.Anchors[0].Cert}, Revocation: policy.RevocationOff},
			&policy.Policy{Name: "suite", Anchors: []*x509.Certificate{info.Anchors[0].Cert}, Revocation: policy.RevocationOff,
				Algorithms: &policy.AlgorithmRules{Suite: suite}})
		if err != nil {
			t.Fatal(err)
		}
		d.Validator, d.Policies = e, e
	}})
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	ctx := ctxT(t)
	data := []byte("<PRIHL/>")
	sig, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: sig.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}, Policy: "suite", Report: true})
	if err != nil {
		t.Fatal(err)
	}
	r := reporttest.CheckValidationReport(t, resp.GetReport())
	s := r.Reports[0]
	want := report.SubIndicationPrefix + "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
	if s.Status.MainIndication != report.Indeterminate || !containsString(s.Status.SubIndications, want) {
		t.Fatalf("indications %s %v, want indeterminate %s (verdict %v)", s.Status.MainIndication, s.Status.SubIndications, want, resp.GetVerdict())
	}
	best := s.TimeInfo.BestSignatureTime
	if best.TypeOfProof != report.POEValidation || best.Object != nil || best.Time != s.TimeInfo.ValidationTime {
		t.Errorf("best signature time %+v: want the validation time, no proof", best)
	}
}
