package cades

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// TestSigningCertificateRevokedPOE: a revoked signing certificate is
// judged against the signature's proof of existence (POE), after ETSI EN
// 319 102-1 (docs/security.md "Revocation and proof of existence"):
//   - revoked at or before the POE (a signature time-stamp, a time the
//     caller asserts): INVALID, REVOKED;
//   - revoked after it: VALID, unless the key was compromised
//     (keyCompromise with an invalidityDate) at or before the POE:
//     INVALID, REVOKED;
//   - no POE: INDETERMINATE, REVOKED_NO_POE (the signature may have been
//     made while the certificate was good, nothing proves it), unless the
//     signer's own claimed signing-time is at or after the revocation:
//     INVALID, REVOKED. Under revocation "prefer" too: it is no unknown
//     status.
func TestSigningCertificateRevokedPOE(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	w := newWorld(t)
	clock := t0.Add(30 * time.Minute)
	now := func() time.Time { return clock }
	sigT := w.sign(t, filing, false) // signature time-stamp at about t0
	plain := func(claimed time.Time) []byte {
		sig, err := signer.Sign(filing, w.key, []*x509.Certificate{w.leaf, w.ca.Cert}, signer.Options{SigningTime: claimed})
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	sigB := plain(t0)
	sigBLate := plain(t0.Add(15 * time.Minute))
	type revocation struct {
		at        time.Time
		reason    int
		compromis time.Time // invalidityDate; zero: none
	}
	crlFor := func(t *testing.T, r *revocation) *policy.CRL {
		rl := &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: t0.Add(20 * time.Minute), NextUpdate: t0.Add(2 * time.Hour)}
		if r != nil {
			e := x509.RevocationListEntry{SerialNumber: w.leaf.SerialNumber, RevocationTime: r.at, ReasonCode: r.reason}
			if !r.compromis.IsZero() {
				v, err := asn1.MarshalWithParams(r.compromis.UTC(), "generalized")
				if err != nil {
					t.Fatal(err)
				}
				e.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 24}, Value: v}}
			}
			rl.RevokedCertificateEntries = []x509.RevocationListEntry{e}
		}
		der, err := x509.CreateRevocationList(rand.Reader, rl, w.ca.Cert, w.ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := policy.ParseCRL(der)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	const keyCompromise = 1
	tests := []struct {
		name   string
		sig    []byte
		at     time.Time // the caller's asserted time
		rev    *revocation
		mode   policy.RevocationMode
		status policy.Status
		code   policy.Code
	}{
		{"time-stamped, not revoked", sigT, time.Time{}, nil, "", policy.Valid, ""},
		{"time-stamped, revoked before the time-stamp (and the claimed signing time)", sigT, time.Time{}, &revocation{at: t0.Add(-30 * time.Second)}, "", policy.Invalid, policy.CodeRevoked},
		{"time-stamped, revoked after the time-stamp", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute)}, "", policy.Valid, ""},
		{"time-stamped, key compromised before the time-stamp, revoked after (claimed signing time after the compromise)", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute), reason: keyCompromise, compromis: t0.Add(-30 * time.Second)}, "", policy.Invalid, policy.CodeRevoked},
		{"time-stamped, key compromised after the time-stamp", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute), reason: keyCompromise, compromis: t0.Add(5 * time.Minute)}, "", policy.Valid, ""},
		{"time-stamped, keyCompromise without a compromise date, revoked after", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute), reason: keyCompromise}, "", policy.Valid, ""},
		{"no POE, not revoked", sigB, time.Time{}, nil, "", policy.Valid, ""},
		{"no POE, revoked after the claimed signing time", sigB, time.Time{}, &revocation{at: t0.Add(10 * time.Minute)}, "", policy.Indeterminate, policy.CodeRevokedNoPOE},
		{"no POE, revoked after the claimed signing time, prefer", sigB, time.Time{}, &revocation{at: t0.Add(10 * time.Minute)}, policy.RevocationPrefer, policy.Indeterminate, policy.CodeRevokedNoPOE},
		{"no POE, revoked before the claimed signing time", sigBLate, time.Time{}, &revocation{at: t0.Add(10 * time.Minute)}, "", policy.Invalid, policy.CodeRevoked},
		{"no POE, key compromised before the claimed signing time", sigB, time.Time{}, &revocation{at: t0.Add(10 * time.Minute), reason: keyCompromise, compromis: t0.Add(-30 * time.Second)}, "", policy.Invalid, policy.CodeRevoked},
		{"the caller's time, revoked after it", sigB, t0, &revocation{at: t0.Add(10 * time.Minute)}, "", policy.Valid, ""},
		{"the caller's time after the revocation, claimed signing time before it", sigB, t0.Add(12 * time.Minute), &revocation{at: t0.Add(10 * time.Minute)}, "", policy.Indeterminate, policy.CodeRevokedNoPOE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == "" {
				mode = policy.RevocationRequire
			}
			e, err := policy.NewEngine("p", &policy.Policy{Name: "p", Anchors: []*x509.Certificate{w.ca.Cert}, Revocation: mode, CRLs: []*policy.CRL{crlFor(t, tc.rev)}})
			if err != nil {
				t.Fatal(err)
			}
			e.Now = now
			r, err := Verify(tc.sig, VerifyOptions{VerifyOptions: signer.VerifyOptions{Content: filing, Validator: e, At: tc.at, Now: now}})
			if err != nil {
				t.Fatal(err)
			}
			v := r.Verdict
			if v.Status != tc.status || (tc.code != "" && !hasCode(v, tc.code)) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
			if tc.code == policy.CodeRevokedNoPOE && hasCode(v, policy.CodeRevoked) {
				t.Fatalf("both REVOKED and REVOKED_NO_POE: %v", v.Reasons)
			}
		})
	}
}

// TestCARevokedPOE: a revoked CA of the signing certificate's path is
// judged against the signature's proof of existence as the signing
// certificate is (ETSI EN 319 102-1 REVOKED_CA_NO_POE; docs/security.md
// "Revocation and proof of existence"): revoked after the signature
// time-stamp or the caller's time is VALID unless the CA's key was
// compromised (invalidityDate) at or before it; otherwise INDETERMINATE,
// REVOKED_CA_NO_POE, or INVALID, REVOKED when the signer's claimed
// signing-time is at or after the revocation. The TSA's path (under the
// same root) is not touched.
func TestCARevokedPOE(t *testing.T) {
	t0 := time.Now().Truncate(time.Second)
	w := newWorld(t)
	clock := t0.Add(30 * time.Minute)
	now := func() time.Time { return clock }
	cert := func(tpl *x509.Certificate, pub any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tpl, w.ca.Cert, pub, w.ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	inter := cert(&x509.Certificate{SerialNumber: big.NewInt(t0.UnixNano() + 1), Subject: pkix.Name{CommonName: "cades test intermediate " + w.ca.Cert.Subject.CommonName},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, interKey.Public())
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(t0.UnixNano() + 2), Subject: pkix.Name{CommonName: "Signer under an intermediate"},
		NotBefore: t0.Add(-10 * time.Minute), NotAfter: t0.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}, inter, key.Public(), interKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(claimed time.Time, stamped bool) []byte {
		o := signer.Options{SigningTime: claimed}
		if stamped { // the signature time-stamp at about t0
			o.UnsignedAttributes = func(sv []byte) ([]signer.Attribute, error) {
				tok, err := w.stamp(context.Background(), sum(crypto.SHA256, sv), crypto.SHA256)
				return []signer.Attribute{{Type: oidSigTimeStamp, Values: [][]byte{tok}}}, err
			}
		}
		sig, err := signer.Sign(filing, key, []*x509.Certificate{leaf, inter, w.ca.Cert}, o)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	sigT := sign(t0.Add(-time.Minute), true) // claims t0-1m, time-stamped at about t0
	sigTLate := sign(t0, true)               // claims t0
	sigB := sign(t0, false)
	interCRL, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: t0.Add(20 * time.Minute), NextUpdate: t0.Add(2 * time.Hour)}, inter, interKey)
	if err != nil {
		t.Fatal(err)
	}
	icrl, err := policy.ParseCRL(interCRL)
	if err != nil {
		t.Fatal(err)
	}
	type revocation struct {
		at        time.Time
		reason    int
		compromis time.Time // invalidityDate; zero: none
	}
	rootCRL := func(t *testing.T, r *revocation) *policy.CRL {
		rl := &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: t0.Add(20 * time.Minute), NextUpdate: t0.Add(2 * time.Hour)}
		if r != nil {
			e := x509.RevocationListEntry{SerialNumber: inter.SerialNumber, RevocationTime: r.at, ReasonCode: r.reason}
			if !r.compromis.IsZero() {
				v, err := asn1.MarshalWithParams(r.compromis.UTC(), "generalized")
				if err != nil {
					t.Fatal(err)
				}
				e.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 24}, Value: v}}
			}
			rl.RevokedCertificateEntries = []x509.RevocationListEntry{e}
		}
		der, err := x509.CreateRevocationList(rand.Reader, rl, w.ca.Cert, w.ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		crl, err := policy.ParseCRL(der)
		if err != nil {
			t.Fatal(err)
		}
		return crl
	}
	const keyCompromise = 1
	tests := []struct {
		name   string
		sig    []byte
		at     time.Time // the caller's asserted time
		rev    *revocation
		status policy.Status
		code   policy.Code
	}{
		{"time-stamped, CA not revoked", sigT, time.Time{}, nil, policy.Valid, ""},
		{"time-stamped, CA revoked before the time-stamp, after the claimed signing time", sigT, time.Time{}, &revocation{at: t0.Add(-30 * time.Second)}, policy.Indeterminate, policy.CodeRevokedCANoPOE},
		{"time-stamped, CA revoked before the time-stamp and the claimed signing time", sigTLate, time.Time{}, &revocation{at: t0.Add(-30 * time.Second)}, policy.Invalid, policy.CodeRevoked},
		{"time-stamped, CA revoked after the time-stamp", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute)}, policy.Valid, ""},
		{"time-stamped, CA's key compromised before the time-stamp, revoked after", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute), reason: keyCompromise, compromis: t0.Add(-30 * time.Second)}, policy.Indeterminate, policy.CodeRevokedCANoPOE},
		{"time-stamped, CA's key compromised after the time-stamp", sigT, time.Time{}, &revocation{at: t0.Add(10 * time.Minute), reason: keyCompromise, compromis: t0.Add(5 * time.Minute)}, policy.Valid, ""},
		{"no POE, CA revoked after the claimed signing time", sigB, time.Time{}, &revocation{at: t0.Add(10 * time.Minute)}, policy.Indeterminate, policy.CodeRevokedCANoPOE},
		{"the caller's time, CA revoked after it", sigB, t0, &revocation{at: t0.Add(10 * time.Minute)}, policy.Valid, ""},
		{"the caller's time after the CA's revocation", sigB, t0.Add(12 * time.Minute), &revocation{at: t0.Add(10 * time.Minute)}, policy.Indeterminate, policy.CodeRevokedCANoPOE},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := policy.NewEngine("p", &policy.Policy{Name: "p", Anchors: []*x509.Certificate{w.ca.Cert}, Revocation: policy.RevocationRequire, CRLs: []*policy.CRL{rootCRL(t, tc.rev), icrl}})
			if err != nil {
				t.Fatal(err)
			}
			e.Now = now
			r, err := Verify(tc.sig, VerifyOptions{VerifyOptions: signer.VerifyOptions{Content: filing, Validator: e, At: tc.at, Now: now}})
			if err != nil {
				t.Fatal(err)
			}
			v := r.Verdict
			if v.Status != tc.status || (tc.code != "" && !hasCode(v, tc.code)) {
				t.Fatalf("%s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
			if tc.code == policy.CodeRevokedCANoPOE && hasCode(v, policy.CodeRevoked) {
				t.Fatalf("both REVOKED and REVOKED_CA_NO_POE: %v", v.Reasons)
			}
		})
	}
}
