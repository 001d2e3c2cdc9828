package signer

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// sha1Era is a CA and a signer of 2009, both RSA-2048 and certified with
// sha1WithRSAEncryption, as Czech qualified CAs did until 2010. The
// signer's certificate is still valid, so that only the algorithms are at
// stake.
func sha1Era(t *testing.T) (ca, leaf *x509.Certificate, leafKey *rsa.PrivateKey) {
	t.Helper()
	caKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err = rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Qualified CA 2009", Country: []string{"CZ"}},
		NotBefore: time.Date(2008, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SignatureAlgorithm: x509.SHA1WithRSA}
	der, err := x509.CreateCertificate(rand.Reader, caT, caT, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	lT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Jan Novák", Country: []string{"CZ"}},
		NotBefore: time.Date(2009, 3, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2029, 3, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, SignatureAlgorithm: x509.SHA1WithRSA}
	if der, err = x509.CreateCertificate(rand.Reader, lT, ca, leafKey.Public(), caKey); err != nil {
		t.Fatal(err)
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return ca, leaf, leafKey
}

// TestHistoricalSHA1UnderSuite: under a policy with an ETSI TS 119 312
// suite, a SHA-1 signature and its SHA-1 certificates are judged by the
// suite at the time a proof of existence gives (here --at, the signing
// time the caller asserts): VALID before SHA-1's end dates, INDETERMINATE
// CRYPTO_CONSTRAINTS_FAILURE_NO_POE without such a proof. A policy without
// a suite refuses SHA-1 as before (docs/security.md "Algorithms").
func TestHistoricalSHA1UnderSuite(t *testing.T) {
	testtool.OpenSSL(t)
	suiteXML, err := os.ReadFile(testtool.Vectors(t, "etsi-ts-119-312-crypto-suite.xml"))
	if err != nil {
		t.Fatal(err)
	}
	suite, err := policy.ParseAlgorithmSuite(suiteXML)
	if err != nil {
		t.Fatal(err)
	}
	ca, leaf, key := sha1Era(t)
	dir := t.TempDir()
	content := []byte("<PRIHL><employee dep=\"123\"/></PRIHL>")
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, dir, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	certFile := writeFile(t, dir, "cert.pem", certPEM(leaf))
	dataFile := writeFile(t, dir, "data", content)
	sigFile := filepath.Join(dir, "sig.p7s")
	testtool.RunOpenSSL(t, "cms", "-sign", "-binary", "-md", "sha1", "-signer", certFile, "-inkey", keyFile,
		"-in", dataFile, "-outform", "DER", "-out", sigFile)
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.NewEngine("suite",
		&policy.Policy{Name: "suite", Anchors: []*x509.Certificate{ca}, Revocation: policy.RevocationOff, Algorithms: &policy.AlgorithmRules{Suite: suite, MinRSABits: 2048}},
		&policy.Policy{Name: "nosuite", Anchors: []*x509.Certificate{ca}, Revocation: policy.RevocationOff, Algorithms: &policy.AlgorithmRules{MinRSABits: 2048}})
	if err != nil {
		t.Fatal(err)
	}
	in2010 := time.Date(2010, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		policy string
		at     time.Time
		status policy.Status
		code   policy.Code
	}{
		{"suite, proof of existence in 2010", "suite", in2010, policy.Valid, ""},
		{"suite, proof of existence after SHA-1's end", "suite", time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC), policy.Indeterminate, policy.CodeCryptoConstraintsNoPOE},
		{"suite, no proof of existence", "suite", time.Time{}, policy.Indeterminate, policy.CodeCryptoConstraintsNoPOE},
		{"no suite, 2010", "nosuite", in2010, policy.Invalid, policy.CodeWeakAlgorithm},
		{"no suite, now", "nosuite", time.Time{}, policy.Invalid, policy.CodeWeakAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(sig, VerifyOptions{Content: content, Validator: e, At: tc.at, Policy: policy.Request{Policy: tc.policy}})
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.status || (tc.code != "" && !hasReasonCode(v, tc.code)) {
				t.Fatalf("got %v %v, want %v %v", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}
}

func hasReasonCode(v policy.Verdict, c policy.Code) bool {
	for _, r := range v.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}
