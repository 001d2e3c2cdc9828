package cades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// world is a CA, a TSA certified by it (two years), a signer whose
// certificate lives one hour, the CA's CRL (next update in two hours) and
// a policy engine that requires revocation.
type world struct {
	ca      *devca.CA
	tsa     *tsa.Authority
	tsaCert *x509.Certificate
	key     crypto.Signer
	leaf    *x509.Certificate
	crl     *policy.CRL
	crlDER  []byte
	engine  *policy.Engine
}

var worlds atomic.Int64

func newWorld(t testing.TB) *world {
	t.Helper()
	now := time.Now()
	// Each world's CA has its own name: CRLs are matched to CAs by name.
	ca, err := devca.NewCA(fmt.Sprintf("cades test CA %d", worlds.Add(1)), now)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := ca.Issue("cades test TSA", devca.TSA, tk.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := tsa.New(tsa.Config{Key: tsa.StaticKey(tk, []*x509.Certificate{tc, ca.Cert}), Policy: asn1.ObjectIdentifier{1, 2, 3, 4, 1}, Accuracy: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lt := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "Short-lived signer", Country: []string{"CZ"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, err := x509.CreateCertificate(rand.Reader, lt, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{ca: ca, tsa: a, tsaCert: tc, key: key, leaf: leaf}
	w.crlDER, w.crl = w.newCRL(t, now)
	w.engine, err = policy.NewEngine("strict", &policy.Policy{Name: "strict", Anchors: []*x509.Certificate{ca.Cert}, Revocation: policy.RevocationRequire,
		AllowOverrides: []policy.Override{policy.OverrideCRLs}},
		&policy.Policy{Name: "closed", Anchors: []*x509.Certificate{ca.Cert}, Revocation: policy.RevocationRequire, AllowOverrides: []policy.Override{}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) newCRL(t testing.TB, now time.Time) ([]byte, *policy.CRL) {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(now.UnixNano()), ThisUpdate: now, NextUpdate: now.Add(2 * time.Hour)}, w.ca.Cert, w.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := policy.ParseCRL(der)
	if err != nil {
		t.Fatal(err)
	}
	return der, crl
}

func (w *world) stamp(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, error) {
	tok, _, err := w.tsa.Token(ctx, digest, h)
	return tok, err
}

// sign makes a CAdES-T signature (detached unless attached).
func (w *world) sign(t testing.TB, content []byte, attached bool) []byte {
	t.Helper()
	sig, err := signer.Sign(content, w.key, []*x509.Certificate{w.leaf, w.ca.Cert}, signer.Options{Attached: attached,
		UnsignedAttributes: func(sv []byte) ([]signer.Attribute, error) {
			tok, err := w.stamp(context.Background(), sum(crypto.SHA256, sv), crypto.SHA256)
			return []signer.Attribute{{Type: oidSigTimeStamp, Values: [][]byte{tok}}}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// augment raises sig with the world's CRL given by the caller.
func (w *world) augment(t testing.TB, sig, content []byte, level Level) AugmentResult {
	t.Helper()
	res, err := Augment(context.Background(), sig, AugmentOptions{Level: level, Stamp: w.stamp, Verify: w.opts(content, time.Time{}, w.crl)})
	if err != nil {
		t.Fatalf("augment to %s: %v", level, err)
	}
	return res
}

// opts verifies under "strict" when the caller gives CRLs, else under
// "closed", which allows no per-call override: embedded CRLs are none.
func (w *world) opts(content []byte, at time.Time, crls ...*policy.CRL) VerifyOptions {
	name := "closed"
	if len(crls) > 0 {
		name = "strict"
	}
	return VerifyOptions{VerifyOptions: signer.VerifyOptions{Content: content, Validator: w.engine, At: at,
		Policy: policy.Request{Policy: name, CRLs: crls}}}
}

func (w *world) verify(t testing.TB, sig, content []byte, at time.Time) Result {
	t.Helper()
	r, err := Verify(sig, w.opts(content, at))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hasCode(v policy.Verdict, c policy.Code) bool {
	for _, r := range v.Reasons {
		if r.Code == c {
			return true
		}
	}
	return false
}

// valueOf returns the first value of the signer's unsigned attribute.
func valueOf(t testing.TB, sig []byte, oid asn1.ObjectIdentifier) []byte {
	t.Helper()
	_, r, err := splitSignedData(sig, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range r.signers[0].attrs {
		if a.oid.Equal(oid) {
			return a.values[len(a.values)-1]
		}
	}
	t.Fatalf("no attribute %s", oid)
	return nil
}

// flipIn flips the last byte of part inside sig.
func flipIn(t testing.TB, sig, part []byte) []byte {
	t.Helper()
	i := bytes.Index(sig, part)
	if i < 0 {
		t.Fatal("part not found")
	}
	out := bytes.Clone(sig)
	out[i+len(part)-1] ^= 1
	return out
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
