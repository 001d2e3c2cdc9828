package server

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/cades"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/keystore"
)

// TestAugmentEPodaniLTA is docs/archive.md "CAdES augmentation" end to
// end over gRPC on a SoftHSM token: an e-podání filing signed with a
// time-stamp by a certificate of one hour, augmented to LTA with the CA's
// CRL, verifies VALID offline (revocation required, no CRL given) thirty
// days later, after the certificate and the CRL expired (the validation
// time moves with VerifyRequest.at, not the clock); without the archive
// time-stamp it is INDETERMINATE. OpenSSL still accepts the augmented
// file; renewing twice keeps it VALID; a flipped byte in the
// certificate-values makes it INVALID.
func TestAugmentEPodaniLTA(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	filing, err := os.ReadFile("../../examples/epodani/testdata/prihl.xml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v, err := f.store.CreateKey(ctx, "short-sign", keystore.PurposeSign, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "short-sign", Country: []string{"CZ"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.Cert, v.Public, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if _, err := f.store.ImportCertificate(ctx, "short-sign", v.Version, []*x509.Certificate{leaf, f.ca.Cert}); err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(2 * time.Hour)}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}

	sc := pecetv1.NewSignServiceClient(f.dial(t, "wide-client"))
	signed, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "short-sign", Input: &pecetv1.SignRequest_Data{Data: filing}, Timestamp: true})
	if err != nil {
		t.Fatal(err)
	}
	augment := func(sig []byte, level pecetv1.CadesLevel) *pecetv1.AugmentResponse {
		t.Helper()
		r, err := sc.Augment(ctx, &pecetv1.AugmentRequest{Signature: sig, Detached: &pecetv1.AugmentRequest_Content{Content: filing},
			Level: level, Policy: "strict", Crls: [][]byte{crl}})
		if err != nil {
			t.Fatalf("augment to %s: %v", level, err)
		}
		return r
	}
	later := timestamppb.New(now.Add(30 * 24 * time.Hour))
	verify := func(sig []byte) *pecetv1.VerifyResponse {
		t.Helper()
		r, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: filing}, Policy: "strict", At: later})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	lt := augment(signed.GetSignature(), pecetv1.CadesLevel_CADES_LEVEL_LT)
	if lt.GetLevel() != string(cades.LevelLT) || lt.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
		t.Fatalf("LT: %s %v", lt.GetLevel(), lt.GetVerdict())
	}
	lta := augment(lt.GetSignature(), pecetv1.CadesLevel_CADES_LEVEL_LTA)
	if lta.GetLevel() != string(cades.LevelLTA) {
		t.Fatalf("LTA: %s", lta.GetLevel())
	}
	r := verify(lta.GetSignature())
	if r.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || r.GetSignatureLevel() != string(cades.LevelLTA) ||
		!r.GetPoeTime().AsTime().Equal(signed.GetTimestampTime().AsTime()) || r.GetArchiveTime() == nil {
		t.Fatalf("LTA after expiry: %v level %s POE %v (signed at %v)", r.GetVerdict(), r.GetSignatureLevel(), r.GetPoeTime(), signed.GetTimestampTime())
	}
	// The LTA signature is the LT one plus the archive time-stamp: the LT
	// one is the LTA signature with it stripped.
	if r := verify(lt.GetSignature()); r.GetVerdict().GetStatus() != pecetv1.Verdict_INDETERMINATE || r.GetSignatureLevel() != string(cades.LevelLT) {
		t.Fatalf("archive time-stamp stripped: %v %s", r.GetVerdict(), r.GetSignatureLevel())
	}

	t.Run("openssl", func(t *testing.T) {
		testtool.OpenSSL(t)
		dir := t.TempDir()
		write := func(name string, b []byte) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		testtool.RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", write("f.p7s", lta.GetSignature()),
			"-content", write("f.xml", filing), "-CAfile", write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Cert.Raw})), "-out", os.DevNull)
	})
	t.Run("renewal twice", func(t *testing.T) {
		sig := lta.GetSignature()
		for range 2 {
			sig = augment(sig, pecetv1.CadesLevel_CADES_LEVEL_LTA).GetSignature()
		}
		if r := verify(sig); r.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || r.GetSignatureLevel() != string(cades.LevelLTA) {
			t.Fatalf("renewed: %v %s", r.GetVerdict(), r.GetSignatureLevel())
		}
	})
	t.Run("flipped certificate-values", func(t *testing.T) {
		sig := bytes.Clone(lta.GetSignature())
		oid, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 23})
		at := bytes.Index(sig, oid)
		i := bytes.Index(sig[at:], leaf.Raw)
		if at < 0 || i < 0 {
			t.Fatal("no certificate-values with the signer's certificate")
		}
		sig[at+i+len(leaf.Raw)-1] ^= 1
		if r := verify(sig); r.GetVerdict().GetStatus() != pecetv1.Verdict_INVALID {
			t.Fatalf("flipped: %v", r.GetVerdict())
		}
	})
}

// augmentStamps is the number of time-stamps the TSA was asked for by
// Augment, granted or not: each one a token signature on the HSM.
func augmentStamps(t *testing.T, f *fixture) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	go func() { f.srv.d.Metrics.TSA.Collect(ch); close(ch) }()
	var n float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "transport" && l.GetValue() == "augment" {
				n += d.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestAugmentJudgesBeforeStamping is docs/archive.md "CAdES augmentation"
// "The order": Augment judges a signature before it asks the TSA, so a
// signature that is not VALID (the content does not match, a flipped
// byte of the signature value, a chain to an anchor the policy does not
// trust) is refused at T, LT and LTA with FAILED_PRECONDITION and no
// time-stamp made; a VALID one still gets exactly the time-stamps its
// level needs.
func TestAugmentJudgesBeforeStamping(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	filing := []byte("podání, verze 1")
	now := time.Now()
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	// A key certified by a CA no policy of the fixture trusts.
	other, err := devca.NewCA("other CA", now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.store.CreateKey(ctx, "stranger-sign", keystore.PurposeSign, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := other.Issue("stranger-sign", devca.CMSSign, v.Public, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(ctx, "stranger-sign", v.Version, []*x509.Certificate{cert, other.Cert}); err != nil {
		t.Fatal(err)
	}
	otherCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, other.Cert, other.Key)
	if err != nil {
		t.Fatal(err)
	}

	sc := pecetv1.NewSignServiceClient(f.dial(t, "wide-client"))
	sign := func(key string, ts bool) []byte {
		t.Helper()
		r, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: key, Input: &pecetv1.SignRequest_Data{Data: filing}, Timestamp: ts})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetSignature()
	}
	b, tsig, stranger := sign("client-sign", false), sign("client-sign", true), sign("stranger-sign", false)
	// Without unsigned attributes the signature value is the last
	// element of the SignedData: its last byte is the ECDSA s.
	flipped := bytes.Clone(b)
	flipped[len(flipped)-1] ^= 1

	levels := []pecetv1.CadesLevel{pecetv1.CadesLevel_CADES_LEVEL_T, pecetv1.CadesLevel_CADES_LEVEL_LT, pecetv1.CadesLevel_CADES_LEVEL_LTA}
	for _, tc := range []struct {
		name    string
		sig     []byte
		content []byte
		crls    [][]byte
	}{
		{"content mismatch", b, []byte("podání, verze 2"), [][]byte{crl}},
		{"content mismatch, T signature", tsig, []byte("podání, verze 2"), [][]byte{crl}},
		{"flipped signature byte", flipped, filing, [][]byte{crl}},
		{"untrusted chain", stranger, filing, [][]byte{crl, otherCRL}},
	} {
		for _, level := range levels {
			if bytes.Equal(tc.sig, tsig) && level == pecetv1.CadesLevel_CADES_LEVEL_T {
				continue // a T signature at T needs no time-stamp
			}
			t.Run(tc.name+"/"+level.String(), func(t *testing.T) {
				before := augmentStamps(t, f)
				_, err := sc.Augment(ctx, &pecetv1.AugmentRequest{Signature: tc.sig, Detached: &pecetv1.AugmentRequest_Content{Content: tc.content},
					Level: level, Policy: "strict", Crls: tc.crls})
				if status.Code(err) != codes.FailedPrecondition {
					t.Errorf("err %v, want FailedPrecondition", err)
				}
				if n := augmentStamps(t, f) - before; n != 0 {
					t.Errorf("%v time-stamps made for a signature refused", n)
				}
			})
		}
	}
	// A VALID signature whose LT material would rest on a token of a
	// revoked TSA certificate: the TSA's certificate is judged before the
	// signature time-stamp is asked for. T does not judge the TSA.
	_, tsaChain, err := f.srv.d.TSA.KeySource()(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tsaRevoked, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(2), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: tsaChain[0].SerialNumber, RevocationTime: now.Add(-time.Minute), ReasonCode: 1}}}, f.ca.Cert, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		level  pecetv1.CadesLevel
		code   codes.Code
		stamps float64
	}{{levels[0], codes.OK, 1}, {levels[1], codes.FailedPrecondition, 0}, {levels[2], codes.FailedPrecondition, 0}} {
		t.Run("revoked TSA/"+tc.level.String(), func(t *testing.T) {
			before := augmentStamps(t, f)
			_, err := sc.Augment(ctx, &pecetv1.AugmentRequest{Signature: b, Detached: &pecetv1.AugmentRequest_Content{Content: filing},
				Level: tc.level, Policy: "strict", Crls: [][]byte{tsaRevoked}})
			if status.Code(err) != tc.code {
				t.Errorf("err %v, want %v", err, tc.code)
			}
			if n := augmentStamps(t, f) - before; n != tc.stamps {
				t.Errorf("%v time-stamps, want %v", n, tc.stamps)
			}
		})
	}

	// The same calls on the VALID signature make one time-stamp each, and
	// LTA a second one (the archive time-stamp).
	for _, tc := range []struct {
		level  pecetv1.CadesLevel
		stamps float64
	}{{levels[0], 1}, {levels[1], 1}, {levels[2], 2}} {
		t.Run("valid/"+tc.level.String(), func(t *testing.T) {
			before := augmentStamps(t, f)
			r, err := sc.Augment(ctx, &pecetv1.AugmentRequest{Signature: b, Detached: &pecetv1.AugmentRequest_Content{Content: filing},
				Level: tc.level, Policy: "strict", Crls: [][]byte{crl}})
			if err != nil {
				t.Fatal(err)
			}
			if n := augmentStamps(t, f) - before; n != tc.stamps {
				t.Errorf("%v time-stamps, want %v", n, tc.stamps)
			}
			vr, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: r.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: filing}, Policy: "strict", Crls: [][]byte{crl}})
			if err != nil {
				t.Fatal(err)
			}
			if vr.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || vr.GetSignatureLevel() != r.GetLevel() {
				t.Fatalf("augmented to %s: %v %s", r.GetLevel(), vr.GetVerdict(), vr.GetSignatureLevel())
			}
		})
	}
}
