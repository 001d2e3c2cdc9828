package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/reporttest"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/report"
	"github.com/pecet-hsm/pecet/signer"
)

// TestVerifyRevokedAroundTrustedTime: a signature whose certificate was
// revoked before the trusted time is INVALID (REVOKED); revoked after it,
// VALID. The trusted time comes from VerifyRequest.at (a verified
// timestamp's time, once CAdES-T verification sets it).
func TestVerifyRevokedAroundTrustedTime(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	data := []byte("<PRIHL/>")
	sig, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	leaf := k.Versions[0].Certificate()
	now := time.Now()
	revokedAt := now.Add(-10 * time.Minute)
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: leaf.SerialNumber, RevocationTime: revokedAt, ReasonCode: 1},
		},
	}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(at time.Time, crls [][]byte, mode pecetv1.RevocationMode) *pecetv1.Verdict {
		t.Helper()
		resp, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{
			Signature: sig.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data},
			At: timestamppb.New(at), Crls: crls, Revocation: mode, Policy: "strict",
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetVerdict()
	}
	tests := []struct {
		name   string
		at     time.Time
		crls   [][]byte
		mode   pecetv1.RevocationMode
		status pecetv1.Verdict_Status
		code   string
	}{
		{"revoked before the trusted time", now.Add(-5 * time.Minute), [][]byte{crlDER}, 0, pecetv1.Verdict_INVALID, "REVOKED"},
		{"revoked after the trusted time", now.Add(-30 * time.Minute), [][]byte{crlDER}, 0, pecetv1.Verdict_VALID, ""},
		{"no CRL, require", now.Add(-5 * time.Minute), nil, 0, pecetv1.Verdict_INDETERMINATE, "REVOCATION_UNKNOWN"},
		{"no CRL, prefer", now.Add(-5 * time.Minute), nil, pecetv1.RevocationMode_PREFER, pecetv1.Verdict_VALID, "REVOCATION_UNKNOWN"},
		// Off means an unknown status is no failure; a CRL the caller
		// brings is still used (docs/security.md "Revocation").
		{"revocation off, the caller's CRL revokes", now.Add(-5 * time.Minute), [][]byte{crlDER}, pecetv1.RevocationMode_OFF, pecetv1.Verdict_INVALID, "REVOKED"},
		{"revocation off, no CRL", now.Add(-5 * time.Minute), nil, pecetv1.RevocationMode_OFF, pecetv1.Verdict_VALID, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := verify(tc.at, tc.crls, tc.mode)
			if v.GetStatus() != tc.status || v.GetPolicy() != "strict" {
				t.Fatalf("status %v policy %q, want %v: %v", v.GetStatus(), v.GetPolicy(), tc.status, v.GetReasons())
			}
			found := tc.code == ""
			for _, r := range v.GetReasons() {
				if r.GetCode() == tc.code {
					found = true
				}
			}
			if !found {
				t.Fatalf("no reason %s in %v", tc.code, v.GetReasons())
			}
		})
	}
}

// TestVerifyReportsOverrides: Verify's verdict lists the per-call
// overrides, as ValidateCertificate's does.
func TestVerifyReportsOverrides(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	data := []byte("<PRIHL/>")
	sig, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{
		Signature: sig.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data},
		Crls: [][]byte{crlDER}, Revocation: pecetv1.RevocationMode_OFF, Policy: "strict",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"revocation: off (policy: require)", "crls: 1 supplied"}
	if v := resp.GetVerdict(); v.GetStatus() != pecetv1.Verdict_VALID || !slices.Equal(v.GetOverrides(), want) {
		t.Fatalf("verdict %v, want overrides %q", v, want)
	}
	_, err = pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{
		Signature: sig.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}, Crls: [][]byte{crlDER},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a CRL on a policy that allows none: %v", err)
	}
}

func TestValidateCertificateRPC(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	leaf := k.Versions[0].Certificate()
	pc := pecetv1.NewPolicyServiceClient(cc)
	resp, err := pc.ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Purpose: pecetv1.Purpose_SIGNING})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetVerdict(); v.GetStatus() != pecetv1.Verdict_VALID || len(v.GetChain()) != 2 || v.GetPolicy() != "test" || v.GetQualification() != "AdES" {
		t.Fatalf("verdict %v", v)
	}
	resp, err = pc.ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Purpose: pecetv1.Purpose_ENCRYPTION})
	if err != nil || resp.GetVerdict().GetStatus() != pecetv1.Verdict_INVALID || resp.GetVerdict().GetReasons()[0].GetCode() != "KEY_USAGE" {
		t.Fatalf("encryption purpose: %v %v", resp.GetVerdict(), err)
	}
	errs := []struct {
		name string
		req  *pecetv1.ValidateCertificateRequest
		code codes.Code
	}{
		{"unknown policy", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Policy: "nope"}, codes.NotFound},
		{"garbage anchor", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Anchors: [][]byte{{1, 2}}, Policy: "strict"}, codes.InvalidArgument},
		{"anchors forbidden", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Anchors: [][]byte{leaf.Raw}}, codes.PermissionDenied},
		{"too many", &pecetv1.ValidateCertificateRequest{Chain: make([][]byte, 10000)}, codes.InvalidArgument},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pc.ValidateCertificate(ctx, tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
	list, err := pc.ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
	if err != nil || len(list.GetPolicies()) != 2 || !list.GetPolicies()[1].GetDefault() || len(list.GetPolicies()[1].GetAnchors()) != 1 {
		t.Fatalf("ListPolicies: %v %v", list, err)
	}
}

// TestValidateCertificateVerdicts: input pecet cannot parse is a verdict,
// INVALID (FORMAT_FAILURE), not a usage error; forbidden overrides are
// PermissionDenied naming the override; the verdict lists the overrides
// used; ListPolicies states the algorithm rules and allowed overrides.
func TestValidateCertificateVerdicts(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	k, err := f.store.GetKey(ctx, "client-sign")
	if err != nil {
		t.Fatal(err)
	}
	leaf := k.Versions[0].Certificate()
	negSerial, err := os.ReadFile(testtool.Vectors(t, "nist-pkits", "certs", "InvalidNegativeSerialNumberTest15EE.crt"))
	if err != nil {
		t.Fatal(err)
	}
	relativeDP, err := os.ReadFile(testtool.Vectors(t, "nist-pkits", "certs", "InvaliddistributionPointTest6EE.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pc := pecetv1.NewPolicyServiceClient(cc)
	tests := []struct {
		name      string
		req       *pecetv1.ValidateCertificateRequest
		code      codes.Code
		status    pecetv1.Verdict_Status
		reason    string // a reason code, or a substring of the error
		overrides []string
	}{
		{"negative serial (PKITS 4.4.15)", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{negSerial}}, codes.OK, pecetv1.Verdict_INVALID, "FORMAT_FAILURE", nil},
		{"relative distribution point (PKITS 4.14.6)", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{relativeDP}}, codes.OK, pecetv1.Verdict_INVALID, "FORMAT_FAILURE", nil},
		{"garbage certificate", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{[]byte("junk")}}, codes.OK, pecetv1.Verdict_INVALID, "FORMAT_FAILURE", nil},
		{"garbage intermediate", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw, []byte("junk")}}, codes.OK, pecetv1.Verdict_INVALID, "FORMAT_FAILURE", nil},
		{"garbage CRL", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Crls: [][]byte{[]byte("junk")}, Policy: "strict"}, codes.OK, pecetv1.Verdict_INVALID, "FORMAT_FAILURE", []string{}},
		{"extra anchor forbidden", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Anchors: [][]byte{leaf.Raw}}, codes.PermissionDenied, 0, "anchors", nil},
		{"CRL forbidden", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Crls: [][]byte{[]byte("junk")}}, codes.PermissionDenied, 0, "crls", nil},
		{"revocation off allowed, reported", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Policy: "strict", Revocation: pecetv1.RevocationMode_OFF}, codes.OK, pecetv1.Verdict_VALID, "", []string{"revocation: off (policy: require)"}},
		{"stricter revocation always allowed", &pecetv1.ValidateCertificateRequest{Chain: [][]byte{leaf.Raw}, Revocation: pecetv1.RevocationMode_REQUIRE}, codes.OK, pecetv1.Verdict_INDETERMINATE, "REVOCATION_UNKNOWN", []string{"revocation: require (policy: off)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := pc.ValidateCertificate(ctx, tc.req)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
			if err != nil {
				if !strings.Contains(status.Convert(err).Message(), tc.reason) {
					t.Fatalf("message %q lacks %q", status.Convert(err).Message(), tc.reason)
				}
				return
			}
			v := resp.GetVerdict()
			if v.GetStatus() != tc.status || v.GetPolicy() == "" {
				t.Fatalf("verdict %v", v)
			}
			if tc.reason != "" && (len(v.GetReasons()) == 0 || v.GetReasons()[0].GetCode() != tc.reason) {
				t.Fatalf("reasons %v, want %s", v.GetReasons(), tc.reason)
			}
			if tc.overrides != nil && !slices.Equal(v.GetOverrides(), tc.overrides) {
				t.Fatalf("overrides %q, want %q", v.GetOverrides(), tc.overrides)
			}
		})
	}
	list, err := pc.ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.GetPolicies() {
		if !strings.Contains(p.GetAlgorithms(), "RSA >= 2048") {
			t.Errorf("%s: algorithms %q", p.GetName(), p.GetAlgorithms())
		}
		want := map[string]string{"strict": "revocation anchors crls", "test": ""}[p.GetName()]
		if got := strings.Join(p.GetAllowedOverrides(), " "); got != want {
			t.Errorf("%s: allowed overrides %q, want %q", p.GetName(), got, want)
		}
	}
}

// TestVerifyRevokedNoPOE: through the Verify RPC, a signature whose
// signing certificate was revoked after the signing-time it claims, with
// no proof of existence, is INDETERMINATE (REVOKED_NO_POE, in the report
// too); a time the caller asserts before the revocation makes it VALID,
// one after it INVALID (REVOKED) (docs/security.md "Revocation and proof
// of existence").
func TestVerifyRevokedNoPOE(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := f.ca.Issue("revoked signer", devca.CMSSign, key.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("<PRIHL/>")
	sig, err := signer.Sign(data, key, []*x509.Certificate{leaf, f.ca.Cert}, signer.Options{SigningTime: now.Add(-20 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf.SerialNumber, RevocationTime: now.Add(-10 * time.Minute)}},
	}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		at     time.Time
		status pecetv1.Verdict_Status
		code   string
	}{
		{"no proof of existence", time.Time{}, pecetv1.Verdict_INDETERMINATE, "REVOKED_NO_POE"},
		{"the caller's time before the revocation", now.Add(-15 * time.Minute), pecetv1.Verdict_VALID, ""},
		{"the caller's time after the revocation", now.Add(-5 * time.Minute), pecetv1.Verdict_INDETERMINATE, "REVOKED_NO_POE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: data},
				Crls: [][]byte{crlDER}, Policy: "strict", Report: true}
			if !tc.at.IsZero() {
				req.At = timestamppb.New(tc.at)
			}
			resp, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			v := resp.GetVerdict()
			codes := map[string]bool{}
			for _, r := range v.GetReasons() {
				codes[r.GetCode()] = true
			}
			if v.GetStatus() != tc.status || (tc.code != "" && !codes[tc.code]) || (tc.code == "" && len(codes) > 0) {
				t.Fatalf("%v %v, want %v %s", v.GetStatus(), v.GetReasons(), tc.status, tc.code)
			}
			r := reporttest.CheckValidationReport(t, resp.GetReport())
			if want := report.SubIndicationPrefix + tc.code; tc.code != "" && !containsString(r.Reports[0].Status.SubIndications, want) {
				t.Fatalf("report sub-indications %v, want %s", r.Reports[0].Status.SubIndications, want)
			}
		})
	}
}

// TestVerifyRevokedCANoPOE: through the Verify RPC, a signature whose
// signing certificate's intermediate CA was revoked after the
// signing-time the signature claims, with no proof of existence, is
// INDETERMINATE (REVOKED_CA_NO_POE, in the report too); a time the caller
// asserts before the revocation makes it VALID, one after it leaves it
// INDETERMINATE; a keyCompromise whose invalidityDate lies before the
// caller's time counts from then (docs/security.md "Revocation and proof
// of existence").
func TestVerifyRevokedCANoPOE(t *testing.T) {
	f := newFixture(t)
	cc := f.dial(t, "client")
	ctx := ctxT(t)
	now := time.Now()
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	interDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "revoked intermediate CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, f.ca.Cert, interKey.Public(), f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		t.Fatal(err)
	}
	interCA := &devca.CA{Cert: inter, Key: interKey}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := interCA.Issue("signer under a revoked CA", devca.CMSSign, key.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("<PRIHL/>")
	sig, err := signer.Sign(data, key, []*x509.Certificate{leaf, inter, f.ca.Cert}, signer.Options{SigningTime: now.Add(-20 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	crl := func(issuer *devca.CA, entries ...x509.RevocationListEntry) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour),
			RevokedCertificateEntries: entries}, issuer.Cert, issuer.Key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	interCRL := crl(interCA)
	revoked := crl(f.ca, x509.RevocationListEntry{SerialNumber: inter.SerialNumber, RevocationTime: now.Add(-10 * time.Minute)})
	invalidity, err := asn1.MarshalWithParams(now.Add(-17*time.Minute).UTC().Truncate(time.Second), "generalized")
	if err != nil {
		t.Fatal(err)
	}
	compromised := crl(f.ca, x509.RevocationListEntry{SerialNumber: inter.SerialNumber, RevocationTime: now.Add(-10 * time.Minute), ReasonCode: 1,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 24}, Value: invalidity}}})
	for _, tc := range []struct {
		name   string
		crl    []byte
		at     time.Time
		status pecetv1.Verdict_Status
		code   string
	}{
		{"no proof of existence", revoked, time.Time{}, pecetv1.Verdict_INDETERMINATE, "REVOKED_CA_NO_POE"},
		{"the caller's time before the revocation", revoked, now.Add(-15 * time.Minute), pecetv1.Verdict_VALID, ""},
		{"the caller's time after the revocation", revoked, now.Add(-5 * time.Minute), pecetv1.Verdict_INDETERMINATE, "REVOKED_CA_NO_POE"},
		{"the caller's time after the CA's key compromise, before the revocation", compromised, now.Add(-15 * time.Minute), pecetv1.Verdict_INDETERMINATE, "REVOKED_CA_NO_POE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: data},
				Crls: [][]byte{tc.crl, interCRL}, Policy: "strict", Report: true}
			if !tc.at.IsZero() {
				req.At = timestamppb.New(tc.at)
			}
			resp, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			v := resp.GetVerdict()
			codes := map[string]bool{}
			for _, r := range v.GetReasons() {
				codes[r.GetCode()] = true
			}
			if v.GetStatus() != tc.status || (tc.code != "" && !codes[tc.code]) || (tc.code == "" && len(codes) > 0) {
				t.Fatalf("%v %v, want %v %s", v.GetStatus(), v.GetReasons(), tc.status, tc.code)
			}
			r := reporttest.CheckValidationReport(t, resp.GetReport())
			if want := report.SubIndicationPrefix + tc.code; tc.code != "" && !containsString(r.Reports[0].Status.SubIndications, want) {
				t.Fatalf("report sub-indications %v, want %s", r.Reports[0].Status.SubIndications, want)
			}
		})
	}
}
