package cades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

var filing = []byte(`<PRIHL><employee dep="123" act="1"/></PRIHL>`)

// TestLTAOutlivesCertificate: a CAdES-T signature by a certificate of one
// hour, augmented to LTA, verifies VALID with revocation required and no
// CRL given, at a time after the certificate and its CRL expired; the
// chain is judged at the signature time-stamp's time. Without the archive
// time-stamp (stripped, or never added) the same verification is
// INDETERMINATE OUT_OF_BOUNDS_NO_POE (docs/archive.md "CAdES
// augmentation").
func TestLTAOutlivesCertificate(t *testing.T) {
	w := newWorld(t)
	later := time.Now().Add(30 * 24 * time.Hour) // leaf and CRL long expired
	for _, attached := range []bool{false, true} {
		t.Run(map[bool]string{false: "detached", true: "attached"}[attached], func(t *testing.T) {
			sig := w.sign(t, filing, attached)
			lt := w.augment(t, sig, filing, LevelLT)
			lta := w.augment(t, lt.Signature, filing, LevelLTA)
			if lta.Level != LevelLTA || lt.Verdict.Status != policy.Valid {
				t.Fatalf("level %s, LT verdict %s", lta.Level, lt.Verdict.Status)
			}
			r := w.verify(t, lta.Signature, filing, later)
			if r.Verdict.Status != policy.Valid || r.Level != LevelLTA {
				t.Fatalf("LTA later: %s %s %v", r.Verdict.Status, r.Level, r.Verdict.Reasons)
			}
			if r.POETime.IsZero() || !r.Verdict.ValidatedAt.Equal(r.POETime) || r.ArchiveTime.Before(r.POETime) {
				t.Fatalf("POE %s, judged at %s, archive %s", r.POETime, r.Verdict.ValidatedAt, r.ArchiveTime)
			}
			// T alone: its time-stamp is a proof for the signature only
			// (here with the CA's CRL given for the TSA).
			for _, tc := range []struct {
				name  string
				sig   []byte
				crls  []*policy.CRL
				level Level
			}{{"stripped archive time-stamp", lt.Signature, nil, LevelLT}, {"T only", sig, []*policy.CRL{w.crl}, LevelT}} {
				r, err := Verify(tc.sig, w.opts(filing, later, tc.crls...))
				if err != nil {
					t.Fatal(err)
				}
				if r.Verdict.Status != policy.Indeterminate || !hasCode(r.Verdict, CodeOutOfBoundsNoPOE) || r.Level != tc.level {
					t.Fatalf("%s: %s %s %v", tc.name, r.Verdict.Status, r.Level, r.Verdict.Reasons)
				}
			}
			// Now, LT alone verifies offline with revocation required.
			r = w.verify(t, lt.Signature, filing, time.Time{})
			if r.Verdict.Status != policy.Valid || r.Level != LevelLT {
				t.Fatalf("LT now: %s %s %v", r.Verdict.Status, r.Level, r.Verdict.Reasons)
			}
		})
	}
}

// TestLTARenewal: each renewal adds an archive time-stamp covering the
// previous ones; a change to any covered element (the certificate-values,
// an earlier archive time-stamp, the signature time-stamp) is INVALID.
func TestLTARenewal(t *testing.T) {
	w := newWorld(t)
	later := time.Now().Add(30 * 24 * time.Hour)
	sig := w.augment(t, w.sign(t, filing, false), filing, LevelLTA).Signature
	first := valueOf(t, sig, oidArchiveTSv3)
	for range 2 {
		sig = w.augment(t, sig, filing, LevelLTA).Signature
	}
	_, r, err := splitSignedData(sig, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.signers[0].find(oidArchiveTSv3)); n != 3 {
		t.Fatalf("%d archive time-stamps, want 3", n)
	}
	if res := w.verify(t, sig, filing, later); res.Verdict.Status != policy.Valid || res.Level != LevelLTA {
		t.Fatalf("renewed twice: %s %s %v", res.Verdict.Status, res.Level, res.Verdict.Reasons)
	}
	// A changed CRL of revocation-values is the only proof of the archive
	// TSA's status: no archive time-stamp verifies, so the mismatch is not
	// one of a verified archive time-stamp (left aside), yet the
	// signature, judged without the proof at the later time, is INVALID.
	tests := []struct {
		name     string
		sig      []byte
		mismatch bool
	}{
		{"certificate-values", flipIn(t, sig, valueOf(t, sig, oidCertValues)), true},
		{"revocation-values", flipIn(t, sig, valueOf(t, sig, oidRevocationValues)), false},
		{"signature time-stamp", flipIn(t, sig, valueOf(t, sig, oidSigTimeStamp)), true},
		{"first archive time-stamp", flipIn(t, sig, first), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Verify(tc.sig, w.opts(filing, later))
			if err != nil {
				t.Fatalf("error %v, want an INVALID verdict", err)
			}
			if res.Verdict.Status != policy.Invalid || res.Level == LevelLTA || hasCode(res.Verdict, CodeArchiveTimestamp) != tc.mismatch {
				t.Fatalf("%s %v", res.Verdict.Status, res.Verdict.Reasons)
			}
		})
	}
	t.Run("other content", func(t *testing.T) {
		res := w.verify(t, sig, []byte("<PRIHL/>"), later)
		if res.Verdict.Status != policy.Invalid {
			t.Fatalf("%s %v", res.Verdict.Status, res.Verdict.Reasons)
		}
	})
}

// TestAugmentRefusesInvalid: LT embeds material only for a signature
// VALID now with revocation required: without any CRL the status is
// unknown, so nothing is embedded.
func TestAugmentRefusesInvalid(t *testing.T) {
	w := newWorld(t)
	sig := w.sign(t, filing, false)
	_, err := Augment(t.Context(), sig, AugmentOptions{Level: LevelLT, Stamp: w.stamp, Verify: w.opts(filing, time.Time{})})
	if !errors.Is(err, ErrNotValid) {
		t.Fatalf("err %v, want ErrNotValid", err)
	}
	_, err = Augment(t.Context(), sig, AugmentOptions{Level: LevelLTA, Stamp: w.stamp, Verify: w.opts(nil, time.Time{}, w.crl)})
	if !errors.Is(err, ErrContentNeeded) {
		t.Fatalf("detached without content: %v, want ErrContentNeeded", err)
	}
	// T on a T signature adds nothing.
	res, err := Augment(t.Context(), sig, AugmentOptions{Level: LevelT, Stamp: w.stamp})
	if err != nil || len(res.Added) != 0 || !bytes.Equal(res.Signature, sig) {
		t.Fatalf("T again: %v %v", err, res.Added)
	}
}

// TestAugmentJudgesBeforeStamping: a signature that is not VALID is
// refused at T, LT and LTA before the Stamper is called (docs/archive.md
// "The order"); a VALID one without a signature time-stamp gets one
// time-stamp at T and LT, two at LTA. With the StamperChain of a TSA the
// policy does not trust, LT and LTA are refused before the Stamper is
// called; T does not judge the TSA.
func TestAugmentJudgesBeforeStamping(t *testing.T) {
	w := newWorld(t)
	b, err := signer.Sign(filing, w.key, []*x509.Certificate{w.leaf, w.ca.Cert}, signer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := devca.NewCA("cades stranger CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, strangerTSA, err := other.IssueKey("cades stranger TSA", devca.TSA, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	stamp := func(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, error) {
		calls++
		return w.stamp(ctx, digest, h)
	}
	for _, tc := range []struct {
		name    string
		content []byte
		chain   []*x509.Certificate
		wantErr map[Level]error
		stamps  map[Level]int
	}{
		{"other content", []byte("other content"), nil, map[Level]error{LevelT: ErrNotValid, LevelLT: ErrNotValid, LevelLTA: ErrNotValid}, map[Level]int{LevelT: 0, LevelLT: 0, LevelLTA: 0}},
		{"valid", filing, nil, map[Level]error{}, map[Level]int{LevelT: 1, LevelLT: 1, LevelLTA: 2}},
		{"valid, TSA trusted", filing, []*x509.Certificate{w.tsaCert, w.ca.Cert}, map[Level]error{}, map[Level]int{LevelT: 1, LevelLT: 1, LevelLTA: 2}},
		{"valid, TSA untrusted", filing, []*x509.Certificate{strangerTSA, other.Cert}, map[Level]error{LevelLT: ErrNotValid, LevelLTA: ErrNotValid}, map[Level]int{LevelT: 1, LevelLT: 0, LevelLTA: 0}},
	} {
		for _, level := range []Level{LevelT, LevelLT, LevelLTA} {
			t.Run(tc.name+"/"+string(level), func(t *testing.T) {
				calls = 0
				res, err := Augment(t.Context(), b, AugmentOptions{Level: level, Stamp: stamp, Verify: w.opts(tc.content, time.Time{}, w.crl), StamperChain: tc.chain})
				if !errors.Is(err, tc.wantErr[level]) {
					t.Fatalf("err %v, want %v", err, tc.wantErr[level])
				}
				if calls != tc.stamps[level] {
					t.Errorf("%d time-stamps, want %d", calls, tc.stamps[level])
				}
				if err == nil && res.Level != level {
					t.Errorf("level %s, want %s", res.Level, level)
				}
			})
		}
	}
}

// TestOpenSSLAcceptsAugmented: only unsigned attributes changed, so
// openssl cms -verify still accepts the LTA signature, renewed.
func TestOpenSSLAcceptsAugmented(t *testing.T) {
	testtool.OpenSSL(t)
	w := newWorld(t)
	sig := w.augment(t, w.sign(t, filing, false), filing, LevelLTA).Signature
	sig = w.augment(t, sig, filing, LevelLTA).Signature
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", pemCert(w.ca.Cert.Raw))
	testtool.RunOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", write("s.p7s", sig), "-content", write("f.xml", filing), "-CAfile", ca, "-out", os.DevNull)
	if _, err := testtool.TryOpenSSL(t, "cms", "-verify", "-binary", "-inform", "DER", "-in", write("bad.p7s", sig), "-content", write("g.xml", []byte("<PRIHL/>")), "-CAfile", ca, "-out", os.DevNull); err == nil {
		t.Fatal("openssl accepted other content")
	}
}

// TestArchiveTimestampWithoutIndex: an archive-time-stamp-v3 without its
// ats-hash-index-v3 (another product's variant) is no proof pecet can
// check: left aside as if stripped, it neither lowers the verdict nor
// makes the signature LTA.
func TestArchiveTimestampWithoutIndex(t *testing.T) {
	w := newWorld(t)
	lt := w.augment(t, w.sign(t, filing, false), filing, LevelLT).Signature
	_, r, err := splitSignedData(lt, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := &r.signers[0]
	s.attrs = append(s.attrs, newAttr(oidArchiveTSv3, s.find(oidSigTimeStamp)[0].values[0]))
	sig, err := r.encode()
	if err != nil {
		t.Fatal(err)
	}
	if res := w.verify(t, sig, filing, time.Time{}); res.Verdict.Status != policy.Valid || res.Level != LevelLT {
		t.Fatalf("now: %s %s %v", res.Verdict.Status, res.Level, res.Verdict.Reasons)
	}
	res := w.verify(t, sig, filing, time.Now().Add(30*24*time.Hour))
	if res.Verdict.Status != policy.Indeterminate || !hasCode(res.Verdict, CodeArchiveTimestampUnused) {
		t.Fatalf("later: %s %s %v", res.Verdict.Status, res.Level, res.Verdict.Reasons)
	}
}

// TestLTAAfterCRLExpiredOnTheClock: the clock itself, not only the
// validation time, is thirty days on, so the signer's CA's embedded CRL
// (issued before the signature time-stamp) is no longer current. The
// archive time-stamp proves it existed, and was current, at its genTime:
// the validation is the one that could be made then (policy.Request.Now).
// Only the archive time-stamp's TSA, under another CA here, needs
// revocation data current now: a CRL the caller gives. Without the
// archive time-stamp the signature does not verify.
func TestLTAAfterCRLExpiredOnTheClock(t *testing.T) {
	w := newWorld(t)
	other := newWorld(t) // its TSA makes the archive time-stamps
	lt := w.augment(t, w.sign(t, filing, false), filing, LevelLT).Signature
	res, err := Augment(t.Context(), lt, AugmentOptions{Level: LevelLTA, Stamp: other.stamp, Verify: w.opts(filing, time.Time{}, w.crl)})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(30 * 24 * time.Hour)
	e, err := policy.NewEngine("strict", &policy.Policy{Name: "strict", Anchors: []*x509.Certificate{w.ca.Cert, other.ca.Cert}, Revocation: policy.RevocationRequire,
		AllowOverrides: []policy.Override{policy.OverrideCRLs}})
	if err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return later }
	_, fresh := other.newCRL(t, later.Add(-time.Minute))
	for _, tc := range []struct {
		name  string
		sig   []byte
		valid bool
	}{{"LTA", res.Signature, true}, {"LT", lt, false}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Verify(tc.sig, VerifyOptions{VerifyOptions: signer.VerifyOptions{Content: filing, Validator: e, Now: e.Now,
				Policy: policy.Request{Policy: "strict", CRLs: []*policy.CRL{fresh}}},
				TSACertificates: []*x509.Certificate{other.tsaCert}})
			if err != nil {
				t.Fatal(err)
			}
			if (r.Verdict.Status == policy.Valid) != tc.valid || (tc.valid && r.Level != LevelLTA) {
				t.Fatalf("%s %s %v", r.Verdict.Status, r.Level, r.Verdict.Reasons)
			}
		})
	}
}
