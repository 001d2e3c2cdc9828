package tsa

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/policy"
)

// engineFor is the policy engine pecetd judges with, over these anchors
// and CRLs.
func engineFor(t testing.TB, mode policy.RevocationMode, crls []*policy.CRL, anchors ...*x509.Certificate) *policy.Engine {
	t.Helper()
	e, err := policy.NewEngine("p", &policy.Policy{Name: "p", Anchors: anchors, Revocation: mode, CRLs: crls})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// datedToken is a token over data made by a TSA whose certificate was
// issued at issued (valid two years) and whose clock says genTime.
func datedToken(t testing.TB, ca *devca.CA, issued, genTime time.Time, data []byte) ([]byte, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("dated TSA", devca.TSA, key.Public(), issued)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Key: StaticKey(key, []*x509.Certificate{cert, ca.Cert}), Policy: testPolicy, Now: func() time.Time { return genTime }})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	id, _ := HashOID(crypto.SHA256)
	r, res := stamp(t, a, &Request{Hash: crypto.SHA256, HashOID: id, Digest: sum[:], CertReq: true})
	if res.Status != StatusGranted {
		t.Fatalf("not granted: %+v", res)
	}
	return r.Token, cert
}

func revokedCRL(t testing.TB, ca *devca.CA, c *x509.Certificate, when time.Time, reason int) *policy.CRL {
	t.Helper()
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: c.SerialNumber, RevocationTime: when, ReasonCode: reason},
		},
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := policy.ParseCRL(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// TestTokenJudgedAtValidationTime: the TSA's chain is judged at the
// validation time (now, or the caller's At), not at the token's own
// genTime, so the key of an expired or compromised TSA certificate cannot
// mint tokens dated in its lifetime (ETSI EN 319 102-1 5.4;
// docs/security.md "Time-stamps"). A revocation for keyCompromise invalidates every token.
func TestTokenJudgedAtValidationTime(t *testing.T) {
	now := time.Now()
	data := []byte("filing")
	ca, err := devca.NewCA("TSA CA", now.AddDate(-6, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// A TSA certificate valid from 6 to 4 years ago; the token says 5
	// years ago, within that lifetime.
	oldTok, _ := datedToken(t, ca, now.AddDate(-6, 0, 0), now.AddDate(-5, 0, 0), data)
	// Its key signing after the certificate expired, claiming 3 years ago.
	lateTok, _ := datedToken(t, ca, now.AddDate(-6, 0, 0), now.AddDate(-3, 0, 0), data)
	// A current TSA whose certificate is revoked: once for keyCompromise,
	// once because it ceased operating, both a day ago; tokens two days old.
	kcTok, kcCert := datedToken(t, ca, now.AddDate(0, -1, 0), now.Add(-48*time.Hour), data)
	ceTok, ceCert := datedToken(t, ca, now.AddDate(0, -1, 0), now.Add(-48*time.Hour), data)
	kcCRL := revokedCRL(t, ca, kcCert, now.Add(-24*time.Hour), 1) // keyCompromise (RFC 5280 5.3.1)
	ceCRL := revokedCRL(t, ca, ceCert, now.Add(-24*time.Hour), 5) // cessationOfOperation
	plain := engineFor(t, policy.RevocationOff, nil, ca.Cert)

	for _, tc := range []struct {
		name   string
		token  []byte
		opts   VerifyOptions
		status policy.Status
		code   policy.Code
	}{
		{"dead TSA, judged now", oldTok, VerifyOptions{Validator: plain}, policy.Indeterminate, CodeOutOfBoundsNoPOE},
		{"dead TSA, judged in its lifetime (--at)", oldTok, VerifyOptions{Validator: plain, At: now.AddDate(-4, -6, 0)}, policy.Valid, ""},
		{"key used after its certificate expired", lateTok, VerifyOptions{Validator: plain, At: now.AddDate(-4, -6, 0)}, policy.Invalid, policy.CodeExpired},
		{"keyCompromise, judged now", kcTok, VerifyOptions{Validator: engineFor(t, policy.RevocationRequire, []*policy.CRL{kcCRL}, ca.Cert)}, policy.Invalid, policy.CodeRevoked},
		{"keyCompromise, judged before the revocation", kcTok, VerifyOptions{Validator: engineFor(t, policy.RevocationRequire, []*policy.CRL{kcCRL}, ca.Cert), At: now.Add(-36 * time.Hour)}, policy.Invalid, policy.CodeRevoked},
		{"ceased, judged before the revocation", ceTok, VerifyOptions{Validator: engineFor(t, policy.RevocationRequire, []*policy.CRL{ceCRL}, ca.Cert), At: now.Add(-36 * time.Hour)}, policy.Valid, ""},
		{"ceased, judged now", ceTok, VerifyOptions{Validator: engineFor(t, policy.RevocationRequire, []*policy.CRL{ceCRL}, ca.Cert)}, policy.Invalid, policy.CodeRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Data = data
			_, v, err := Verify(tc.token, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.status || (tc.code != "" && !hasReason(v, tc.code)) {
				t.Fatalf("got %v %v, want %v %v", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}
}

// TestTokenNameChaining: a token signed by a TSA whose issuing CA is
// absent does not verify against a self-signed anchor that merely carries
// the TSA's (or the issuing CA's) subject name: the token path builds and
// checks paths as the signature path does (RFC 5280 6.1.3 (a): issuer name
// and signature). OpenSSL says "unable to get local issuer certificate"
// (docs/tsa.md "Verification").
func TestTokenNameChaining(t *testing.T) {
	now := time.Now()
	root, err := devca.NewCA("root", now)
	if err != nil {
		t.Fatal(err)
	}
	issuingKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "issuing CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign},
		root.Cert, issuingKey.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	issuingCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	issuing := &devca.CA{Cert: issuingCert, Key: issuingKey}
	tsaKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tsaCert, err := issuing.Issue("TSU 1", devca.TSA, tsaKey.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Key: StaticKey(tsaKey, []*x509.Certificate{tsaCert}), Policy: testPolicy})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("filing")
	sum := sha256.Sum256(data)
	id, _ := HashOID(crypto.SHA256)
	r, _ := stamp(t, a, &Request{Hash: crypto.SHA256, HashOID: id, Digest: sum[:], CertReq: true})

	selfSigned := func(subject []byte, key *ecdsa.PrivateKey) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), RawSubject: subject, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name   string
		anchor *x509.Certificate
		tsa    []*x509.Certificate
		status policy.Status
	}{
		{"anchor with the TSA's name", selfSigned(tsaCert.RawSubject, other), nil, policy.Indeterminate},
		{"anchor with the TSA's name and key", selfSigned(tsaCert.RawSubject, tsaKey), nil, policy.Indeterminate},
		{"anchor with the TSA's name and key, also as TSA certificate", selfSigned(tsaCert.RawSubject, tsaKey), nil, policy.Indeterminate},
		{"anchor with the issuing CA's name", selfSigned(issuingCert.RawSubject, other), nil, policy.Invalid},
		{"the real root, issuing CA absent", root.Cert, nil, policy.Indeterminate},
		{"the real root, issuing CA known", root.Cert, []*x509.Certificate{issuingCert}, policy.Valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tsaCerts := tc.tsa
			if strings.HasSuffix(tc.name, "also as TSA certificate") {
				tsaCerts = []*x509.Certificate{tc.anchor}
			}
			_, v, err := Verify(r.Token, VerifyOptions{Validator: engineFor(t, policy.RevocationOff, nil, tc.anchor), Data: data, TSACertificates: tsaCerts})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.status {
				t.Fatalf("got %v %v, want %v", v.Status, v.Reasons, tc.status)
			}
		})
	}
}
