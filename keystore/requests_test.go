package keystore_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestRequests(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	if err := s.PutRequest(ctx, "b-2", []byte(`{"op":"destroy"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutRequest(ctx, "a-1", []byte(`{"op":"create"}`)); err != nil {
		t.Fatal(err)
	}
	// A key alias's metadata is not a request, and a request is not a key.
	enabledKey(t, s, "client-sign", keystore.PurposeSign, keystore.ECP256)
	rs, err := s.ListRequests(ctx)
	if err != nil || len(rs) != 2 || rs[0].ID != "a-1" || rs[1].ID != "b-2" || string(rs[1].Value) != `{"op":"destroy"}` {
		t.Fatalf("ListRequests = %+v, %v", rs, err)
	}
	if ks, err := s.ListKeys(ctx); err != nil || len(ks) != 1 {
		t.Fatalf("ListKeys sees requests: %+v, %v", ks, err)
	}
	if v, err := s.GetRequest(ctx, "a-1"); err != nil || string(v) != `{"op":"create"}` {
		t.Fatalf("GetRequest = %q, %v", v, err)
	}
	refusals := []struct {
		name string
		do   func() error
		want error
	}{
		{"duplicate id", func() error { return s.PutRequest(ctx, "a-1", []byte("x")) }, keystore.ErrInvalidRequest},
		{"bad id", func() error { return s.PutRequest(ctx, "../x", []byte("x")) }, keystore.ErrInvalidRequest},
		{"empty value", func() error { return s.PutRequest(ctx, "c", nil) }, keystore.ErrInvalidRequest},
		{"large value", func() error { return s.PutRequest(ctx, "c", make([]byte, keystore.MaxRequestBytes+1)) }, keystore.ErrInvalidRequest},
		{"get unknown", func() error { _, err := s.GetRequest(ctx, "zz"); return err }, keystore.ErrRequestNotFound},
		{"delete unknown", func() error { return s.DeleteRequest(ctx, "zz") }, keystore.ErrRequestNotFound},
		{"delete bad id", func() error { return s.DeleteRequest(ctx, "A B") }, keystore.ErrInvalidRequest},
	}
	for _, r := range refusals {
		if err := r.do(); !errors.Is(err, r.want) {
			t.Errorf("%s: %v, want %v", r.name, err, r.want)
		}
	}
	if err := s.DeleteRequest(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRequest(ctx, "a-1"); !errors.Is(err, keystore.ErrRequestNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if rs, _ := s.ListRequests(ctx); len(rs) != 1 || rs[0].ID != "b-2" {
		t.Errorf("after delete: %+v", rs)
	}
}

// TestProofSigner: CSR proof-of-possession signatures for versions that
// are not (yet) enabled, including decrypt-only RSA keys.
func TestProofSigner(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	for _, c := range []struct {
		alias string
		p     keystore.Purpose
		a     keystore.Algorithm
	}{
		{"sign-ec", keystore.PurposeSign, keystore.ECP256},
		{"decrypt-rsa", keystore.PurposeDecrypt, keystore.RSA2048},
	} {
		v, err := s.CreateKey(ctx, c.alias, c.p, c.a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Signer(ctx, c.alias, 1, keystore.PurposeSign); err == nil {
			t.Fatalf("%s: Signer on a pending version succeeded", c.alias)
		}
		ps, err := s.ProofSigner(ctx, c.alias, 1)
		if err != nil {
			t.Fatalf("%s: %v", c.alias, err)
		}
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: c.alias}}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, ps)
		if err != nil {
			t.Fatalf("%s: CSR: %v", c.alias, err)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("%s: CSR does not verify: %v", c.alias, err)
		}
		if !bytes.Equal(mustSPKI(t, csr.PublicKey), mustSPKI(t, v.Public)) {
			t.Errorf("%s: CSR key is not the version's", c.alias)
		}
		if _, err := s.ProofSigner(ctx, c.alias, 2); !errors.Is(err, keystore.ErrVersionNotFound) {
			t.Errorf("%s: version 2: %v", c.alias, err)
		}
		if _, err := s.ProofSigner(ctx, c.alias, 0); !errors.Is(err, keystore.ErrVersionNotFound) {
			t.Errorf("%s: version 0: %v", c.alias, err)
		}
	}
	// The decrypt key's raw signer refuses anything but PKCS#1 v1.5 over a
	// SHA-2 digest of the right length.
	ps, _ := s.ProofSigner(ctx, "decrypt-rsa", 1)
	sum := sha256.Sum256([]byte("x"))
	for _, c := range []struct {
		opts crypto.SignerOpts
		n    int
	}{{crypto.Hash(0), 32}, {crypto.SHA1, 20}, {&rsa.PSSOptions{Hash: crypto.SHA256}, 32}} {
		opts := c.opts
		if _, err := ps.Sign(rand.Reader, sum[:c.n], opts); err == nil {
			t.Errorf("raw proof signer accepted %T %v", opts, opts.HashFunc())
		}
	}
	if _, err := ps.Sign(rand.Reader, sum[:20], crypto.SHA256); err == nil {
		t.Error("raw proof signer accepted a short digest")
	}
	// Destroyed versions have no proof signer.
	if _, err := s.DestroyKeyVersion(ctx, "sign-ec", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ProofSigner(ctx, "sign-ec", 1); !errors.Is(err, keystore.ErrInvalidState) {
		t.Errorf("destroyed: %v", err)
	}
}

func mustSPKI(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckCertificateUsage(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := newCA(t)
	eku := func(critical bool, oids ...asn1.ObjectIdentifier) pkix.Extension {
		v, _ := asn1.Marshal(oids)
		return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Critical: critical, Value: v}
	}
	ts := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	email := asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}
	mk := func(ku x509.KeyUsage, ext ...pkix.Extension) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "x"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: ku, ExtraExtensions: ext}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	cases := []struct {
		name string
		p    keystore.Purpose
		c    *x509.Certificate
		ok   bool
	}{
		{"sign digitalSignature", keystore.PurposeSign, mk(x509.KeyUsageDigitalSignature), true},
		{"sign nonRepudiation", keystore.PurposeSign, mk(x509.KeyUsageContentCommitment), true},
		{"sign keyEncipherment only", keystore.PurposeSign, mk(x509.KeyUsageKeyEncipherment), false},
		{"sign no KU", keystore.PurposeSign, mk(0), false},
		{"decrypt keyEncipherment", keystore.PurposeDecrypt, mk(x509.KeyUsageKeyEncipherment), true},
		{"decrypt digitalSignature", keystore.PurposeDecrypt, mk(x509.KeyUsageDigitalSignature), false},
		{"timestamp critical", keystore.PurposeTimestamp, mk(x509.KeyUsageDigitalSignature, eku(true, ts)), true},
		{"timestamp not critical", keystore.PurposeTimestamp, mk(x509.KeyUsageDigitalSignature, eku(false, ts)), false},
		{"timestamp two EKUs", keystore.PurposeTimestamp, mk(x509.KeyUsageDigitalSignature, eku(true, ts, email)), false},
		{"timestamp wrong EKU", keystore.PurposeTimestamp, mk(x509.KeyUsageDigitalSignature, eku(true, email)), false},
		{"timestamp no EKU", keystore.PurposeTimestamp, mk(x509.KeyUsageDigitalSignature), false},
		{"nil", keystore.PurposeSign, nil, false},
	}
	for _, c := range cases {
		err := keystore.CheckCertificateUsage(c.p, c.c)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, keystore.ErrCertificateUsage)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestAppState(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	if vs, err := s.GetAppState(ctx, "audit-x"); err != nil || len(vs) != 0 {
		t.Fatalf("GetAppState before Put = %q, %v", vs, err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.PutAppState(ctx, "audit-x", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if vs, err := s.GetAppState(ctx, "audit-x"); err != nil || len(vs) != 1 || string(vs[0]) != "two" {
		t.Fatalf("GetAppState = %q, %v; want [two]", vs, err)
	}
	// States are neither requests nor keys.
	if rs, err := s.ListRequests(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("ListRequests sees states: %+v, %v", rs, err)
	}
	if ks, err := s.ListKeys(ctx); err != nil || len(ks) != 0 {
		t.Fatalf("ListKeys sees states: %+v, %v", ks, err)
	}
	for _, bad := range []struct {
		name  string
		value []byte
	}{{"A", []byte("x")}, {"ok", nil}, {"ok", make([]byte, keystore.MaxAppStateBytes+1)}} {
		if err := s.PutAppState(ctx, bad.name, bad.value); !errors.Is(err, keystore.ErrInvalidAppState) {
			t.Errorf("PutAppState(%q, %d bytes) = %v, want ErrInvalidAppState", bad.name, len(bad.value), err)
		}
	}
}

// An AUDIT key signs for the audit log only: asked for as a SIGN or
// TIMESTAMP key it is refused, so no Sign or Timestamp call can make it
// sign a message of the caller's choosing.
func TestAuditPurposeIsolated(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	enabledKey(t, s, "audit", keystore.PurposeAudit, keystore.ECP256)
	k, err := s.Signer(ctx, "audit", 0, keystore.PurposeAudit)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("checkpoint"))
	sig, err := k.Sign(nil, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(k.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("AUDIT signature: %v", err)
	}
	for _, p := range []keystore.Purpose{keystore.PurposeSign, keystore.PurposeTimestamp} {
		if _, err := s.Signer(ctx, "audit", 0, p); !errors.Is(err, keystore.ErrWrongPurpose) {
			t.Errorf("Signer(audit, %s) = %v, want ErrWrongPurpose", p, err)
		}
	}
	if _, err := s.CreateKey(ctx, "audit-rsa", keystore.PurposeAudit, keystore.RSA2048); err != nil {
		t.Errorf("CreateKey(AUDIT, RSA-2048): %v", err)
	}
}
