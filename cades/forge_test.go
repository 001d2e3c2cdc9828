package cades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// appendAttr appends an unsigned attribute to the signer of sig.
func appendAttr(t testing.TB, sig []byte, a rawAttr) []byte {
	t.Helper()
	_, r, err := splitSignedData(sig, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := &r.signers[0]
	s.attrs = append(s.attrs, a)
	out, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// forgeATS appends an archive-time-stamp-v3 made by stamp over sig whose
// hash index also names a certificate the signature does not hold; with
// badImprint the token's imprint is of other bytes.
func forgeATS(t testing.TB, sig []byte, stamp func(context.Context, []byte, crypto.Hash) ([]byte, error), badImprint bool) []byte {
	t.Helper()
	_, r, err := splitSignedData(sig, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := &r.signers[0]
	x := hashIndexOf(r, s, crypto.SHA256)
	made := make([]byte, 32)
	if _, err := rand.Read(made); err != nil {
		t.Fatal(err)
	}
	x.Certificates = append(x.Certificates, made)
	idx := x.encode()
	digest := imprint(r, s, sum(crypto.SHA256, filing), crypto.SHA256, idx)
	if badImprint {
		digest = sum(crypto.SHA256, []byte("other"))
	}
	tok, err := stamp(context.Background(), digest, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	_, tr, err := splitSignedData(tok, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tr.signers[0].attrs = append(tr.signers[0].attrs, newAttr(oidATSHashIndexV3, idx))
	if tok, err = tr.encode(); err != nil {
		t.Fatal(err)
	}
	s.attrs = append(s.attrs, newAttr(oidArchiveTSv3, tok))
	out, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAppendedJunkDoesNotInvalidate: unsigned attributes are not
// protected, so junk appended to a VALID LT or LTA signature (an archive
// time-stamp from an untrusted TSA whose hash index names a made-up
// certificate, malformed certificate-values or revocation-values) is left
// aside: the signature is not INVALID.
func TestAppendedJunkDoesNotInvalidate(t *testing.T) {
	w := newWorld(t)
	untrusted := newWorld(t)
	lt := w.augment(t, w.sign(t, filing, false), filing, LevelLT).Signature
	lta := w.augment(t, lt, filing, LevelLTA).Signature
	integerZero := []byte{0x02, 0x01, 0x00}
	for _, base := range []struct {
		name string
		sig  []byte
	}{{"LT", lt}, {"LTA", lta}} {
		for _, tc := range []struct {
			name string
			sig  []byte
		}{
			{"forged ATS", forgeATS(t, base.sig, untrusted.stamp, false)},
			{"forged ATS, other imprint", forgeATS(t, base.sig, untrusted.stamp, true)},
			{"certificate-values INTEGER 0", appendAttr(t, base.sig, newAttr(oidCertValues, integerZero))},
			{"revocation-values INTEGER 0", appendAttr(t, base.sig, newAttr(oidRevocationValues, integerZero))},
			{"forged ATS and certificate-values", appendAttr(t, forgeATS(t, base.sig, untrusted.stamp, false), newAttr(oidCertValues, integerZero))},
		} {
			t.Run(base.name+"/"+tc.name, func(t *testing.T) {
				res := w.verify(t, tc.sig, filing, time.Time{})
				if res.Verdict.Status != policy.Valid {
					t.Fatalf("%s %s %v", res.Verdict.Status, res.Level, res.Verdict.Reasons)
				}
			})
		}
	}
}

// TestLTAChangedCertificate: a byte of an embedded certificate changed
// under a VALID archive time-stamp is INVALID.
func TestLTAChangedCertificate(t *testing.T) {
	w := newWorld(t)
	lta := w.augment(t, w.augment(t, w.sign(t, filing, false), filing, LevelLT).Signature, filing, LevelLTA).Signature
	cv := valueOf(t, lta, oidCertValues)
	at := bytes.Index(lta, cv)
	in := bytes.Index(cv, w.leaf.Raw)
	if at < 0 || in < 0 {
		t.Fatal("the signer's certificate is not in certificate-values")
	}
	sig := bytes.Clone(lta)
	sig[at+in+len(w.leaf.Raw)/2] ^= 0x40
	res := w.verify(t, sig, filing, time.Now().Add(30*24*time.Hour))
	if res.Verdict.Status != policy.Invalid || !hasCode(res.Verdict, CodeArchiveTimestamp) {
		t.Fatalf("%s %v", res.Verdict.Status, res.Verdict.Reasons)
	}
}

// TestAugmentRefusesBeyondArchiveLimit: with MaxArchiveTimestamps archive
// time-stamps, another would make the signature one Verify refuses:
// Augment refuses (ErrTooLarge) before stamping.
func TestAugmentRefusesBeyondArchiveLimit(t *testing.T) {
	w := newWorld(t)
	lta := w.augment(t, w.augment(t, w.sign(t, filing, false), filing, LevelLT).Signature, filing, LevelLTA).Signature
	ats := valueOf(t, lta, oidArchiveTSv3)
	sig := lta
	for range MaxArchiveTimestamps - 1 {
		sig = appendAttr(t, sig, newAttr(oidArchiveTSv3, ats))
	}
	if res := w.verify(t, sig, filing, time.Time{}); res.Verdict.Status != policy.Valid {
		t.Fatalf("%d archive time-stamps: %s %v", MaxArchiveTimestamps, res.Verdict.Status, res.Verdict.Reasons)
	}
	stamped := false
	stamp := func(ctx context.Context, d []byte, h crypto.Hash) ([]byte, error) {
		stamped = true
		return w.stamp(ctx, d, h)
	}
	_, err := Augment(t.Context(), sig, AugmentOptions{Level: LevelLTA, Stamp: stamp, Verify: w.opts(filing, time.Time{}, w.crl)})
	if !errors.Is(err, ErrTooLarge) || stamped {
		t.Fatalf("err %v, stamped %v; want ErrTooLarge before stamping", err, stamped)
	}
}
