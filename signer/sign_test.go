package signer

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// mode is how a round-trip signature is made.
type mode string

const (
	detached mode = "detached"
	attached mode = "attached"
	digest   mode = "digest"
)

func signIn(t testing.TB, m mode, content []byte, f signerFixture, h crypto.Hash, at time.Time) []byte {
	t.Helper()
	opts := Options{Hash: h, Attached: m == attached, SigningTime: at}
	var sig []byte
	var err error
	if m == digest {
		d := h.New()
		d.Write(content)
		sig, err = SignDigest(d.Sum(nil), f.key, f.chain(), opts)
	} else {
		sig, err = Sign(content, f.key, f.chain(), opts)
	}
	if err != nil {
		t.Fatalf("sign %s: %v", m, err)
	}
	return sig
}

// verifyOpts says what a verifier of a signature made in mode m gives.
func verifyOpts(m mode, content []byte, h crypto.Hash, v policy.Validator) VerifyOptions {
	o := VerifyOptions{Validator: v}
	switch m {
	case detached:
		o.Content = content
	case digest:
		d := h.New()
		d.Write(content)
		o.Digest, o.DigestHash = d.Sum(nil), h
	}
	return o
}

func TestRoundTrip(t *testing.T) {
	content := []byte("Přihláška k důchodovému pojištění\n")
	for _, k := range []keyKind{rsa2048, p256, p384} {
		f := newSigner(t, k)
		for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
			for _, m := range []mode{detached, attached, digest} {
				t.Run(string(k)+"/"+h.String()+"/"+string(m), func(t *testing.T) {
					at := time.Now().Add(-time.Minute).Truncate(time.Second)
					sig := signIn(t, m, content, f, h, at)

					v, err := Verify(sig, verifyOpts(m, content, h, f.ca.validator()))
					if err != nil {
						t.Fatal(err)
					}
					if v.Status != policy.Valid {
						t.Fatalf("status %s, reasons %v", v.Status, v.Reasons)
					}
					if v.Subject != f.cert.Subject.String() {
						t.Errorf("subject %q", v.Subject)
					}
					if !v.SigningTime.Equal(at) {
						t.Errorf("signing time %v, want %v", v.SigningTime, at)
					}
					if len(v.Chain) != 2 || !v.Chain[1].Equal(f.ca.cert) {
						t.Errorf("chain %d certificates", len(v.Chain))
					}

					sd, err := Parse(sig)
					if err != nil {
						t.Fatal(err)
					}
					if sd.Detached != (m != attached) || (m == attached && !bytes.Equal(sd.Content, content)) {
						t.Errorf("content: detached=%v %q", sd.Detached, sd.Content)
					}
					if len(sd.Certificates) != 2 || sd.SignerInfos[0].Hash != h {
						t.Errorf("parsed %d certificates, hash %v", len(sd.Certificates), sd.SignerInfos[0].Hash)
					}
				})
			}
		}
	}
}

func TestTamper(t *testing.T) {
	content := []byte("podání\n")
	f := newSigner(t, p256)
	sig := signIn(t, attached, content, f, crypto.SHA256, time.Time{})
	sd, err := Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	// Offsets of the embedded content and of the signature value in sig.
	contentAt := bytes.Index(sig, content)
	sigAt := bytes.Index(sig, sd.SignerInfos[0].Signature)
	if contentAt < 0 || sigAt < 0 {
		t.Fatal("cannot locate content or signature")
	}
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x01
		return b
	}
	other := []byte("podánÍ\n")

	tests := []struct {
		name string
		sig  []byte
		opts VerifyOptions
		want policy.Code
	}{
		{"content byte", flip(sig, contentAt+2), VerifyOptions{}, policy.CodeDigestMismatch},
		// The last byte of an ECDSA signature is inside s.
		{"signature byte", flip(sig, sigAt+len(sd.SignerInfos[0].Signature)-1), VerifyOptions{}, policy.CodeSignatureMismatch},
		{"detached content", signIn(t, detached, content, f, crypto.SHA256, time.Time{}), VerifyOptions{Content: other}, policy.CodeDigestMismatch},
		{"detached digest", signIn(t, digest, content, f, crypto.SHA256, time.Time{}), verifyOpts(digest, other, crypto.SHA256, nil), policy.CodeDigestMismatch},
		{"digest hash differs", signIn(t, digest, content, f, crypto.SHA256, time.Time{}), verifyOpts(digest, content, crypto.SHA384, nil), policy.CodeDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Validator = f.ca.validator()
			v, err := Verify(tc.sig, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != policy.Invalid || !hasReason(v, tc.want) {
				t.Fatalf("got %s %v, want INVALID %s", v.Status, v.Reasons, tc.want)
			}
		})
	}
}

func TestTamperRSASignature(t *testing.T) {
	f := newSigner(t, rsa2048)
	sig := signIn(t, detached, []byte("x"), f, crypto.SHA256, time.Time{})
	sd, _ := Parse(sig)
	i := bytes.Index(sig, sd.SignerInfos[0].Signature)
	sig[i+10] ^= 0x80
	v, err := Verify(sig, VerifyOptions{Content: []byte("x"), Validator: f.ca.validator()})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != policy.Invalid || !hasReason(v, policy.CodeSignatureMismatch) {
		t.Fatalf("got %s %v", v.Status, v.Reasons)
	}
}

func TestSignErrors(t *testing.T) {
	f := newSigner(t, p256)
	other := newSigner(t, p256)
	sha256Digest := make([]byte, 32)

	tests := []struct {
		name string
		do   func() ([]byte, error)
		want error
	}{
		{"SHA-1", func() ([]byte, error) { return Sign([]byte("x"), f.key, f.chain(), Options{Hash: crypto.SHA1}) }, ErrUnsupportedHash},
		{"MD5", func() ([]byte, error) { return Sign([]byte("x"), f.key, f.chain(), Options{Hash: crypto.MD5}) }, ErrUnsupportedHash},
		{"SHA-224", func() ([]byte, error) { return Sign([]byte("x"), f.key, f.chain(), Options{Hash: crypto.SHA224}) }, ErrUnsupportedHash},
		{"SHA-1 digest", func() ([]byte, error) {
			return SignDigest(make([]byte, 20), f.key, f.chain(), Options{Hash: crypto.SHA1})
		}, ErrUnsupportedHash},
		{"empty content", func() ([]byte, error) { return Sign(nil, f.key, f.chain(), Options{}) }, ErrEmptyContent},
		{"no chain", func() ([]byte, error) { return Sign([]byte("x"), f.key, nil, Options{}) }, ErrNoCertificate},
		{"nil leaf", func() ([]byte, error) { return Sign([]byte("x"), f.key, []*x509.Certificate{nil}, Options{}) }, ErrNoCertificate},
		{"key mismatch", func() ([]byte, error) { return Sign([]byte("x"), f.key, other.chain(), Options{}) }, ErrKeyMismatch},
		{"short digest", func() ([]byte, error) { return SignDigest(sha256Digest[:31], f.key, f.chain(), Options{}) }, ErrDigestLength},
		{"SHA-256 digest as SHA-384", func() ([]byte, error) {
			return SignDigest(sha256Digest, f.key, f.chain(), Options{Hash: crypto.SHA384})
		}, ErrDigestLength},
		{"empty digest", func() ([]byte, error) { return SignDigest(nil, f.key, f.chain(), Options{}) }, ErrDigestLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.do()
			if !errors.Is(err, tc.want) || out != nil {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// countingSigner counts calls to Sign, standing in for an HSM key.
type countingSigner struct {
	crypto.Signer
	calls int
}

func (c *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	c.calls++
	return c.Signer.Sign(r, d, o)
}

// brokenSigner returns a wrong signature, as a faulty token might.
type brokenSigner struct{ crypto.Signer }

func (b brokenSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return b.Signer.Sign(r, make([]byte, len(d)), o)
}

func TestSignCallsKeyOnce(t *testing.T) {
	f := newSigner(t, p256)
	cs := &countingSigner{Signer: f.key}
	if _, err := Sign([]byte("x"), cs, f.chain(), Options{}); err != nil {
		t.Fatal(err)
	}
	if cs.calls != 1 {
		t.Fatalf("key.Sign called %d times", cs.calls)
	}
	if _, err := Sign([]byte("x"), brokenSigner{f.key}, f.chain(), Options{}); err == nil {
		t.Fatal("a wrong signature from the key was not noticed")
	}
}

func TestVerifyChain(t *testing.T) {
	now := time.Now()
	content := []byte("data")
	f := newSigner(t, p256)
	stranger := newCA(t, "unknown CA", now.Add(-time.Hour), now.AddDate(1, 0, 0))

	expiredKey := newKey(t, p256)
	expired := signerFixture{ca: f.ca, key: expiredKey,
		cert: f.ca.issue(t, expiredKey, "expired signer", now.AddDate(-2, 0, 0), now.AddDate(-1, 0, 0))}

	tests := []struct {
		name       string
		f          signerFixture
		at         time.Time // signing time
		v          policy.Validator
		opts       VerifyOptions
		wantStatus policy.Status
		wantCode   policy.Code
	}{
		{"valid", f, now, f.ca.validator(), VerifyOptions{}, policy.Valid, ""},
		{"unknown root", f, now, stranger.validator(), VerifyOptions{}, policy.Indeterminate, policy.CodeUntrustedRoot},
		{"no validator", f, now, nil, VerifyOptions{}, policy.Indeterminate, policy.CodeUntrustedRoot},
		{"expired at signing time", expired, now, f.ca.validator(), VerifyOptions{}, policy.Invalid, policy.CodeExpired},
		// The signing-time attribute is the signer's claim, not a trusted
		// time (README.md "Certificate policy": At, else a verified
		// time-stamp's time, else now).
		{"claimed signing time is not trusted", expired, now.AddDate(-1, -6, 0), f.ca.validator(), VerifyOptions{}, policy.Invalid, policy.CodeExpired},
		{"At judges at a given time", expired, now.AddDate(-1, -6, 0), f.ca.validator(), VerifyOptions{At: now.AddDate(-1, -6, 0)}, policy.Valid, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sig := signIn(t, attached, content, tc.f, crypto.SHA256, tc.at)
			tc.opts.Validator = tc.v
			v, err := Verify(sig, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.wantStatus || (tc.wantCode != "" && !hasReason(v, tc.wantCode)) {
				t.Fatalf("got %s %v, want %s %s", v.Status, v.Reasons, tc.wantStatus, tc.wantCode)
			}
			if tc.wantStatus == policy.Valid && len(v.Reasons) != 0 {
				t.Errorf("reasons on a valid verdict: %v", v.Reasons)
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	f := newSigner(t, p256)
	sig := signIn(t, detached, []byte("x"), f, crypto.SHA256, time.Time{})
	tests := []struct {
		name string
		der  []byte
		opts VerifyOptions
		want error
	}{
		{"content missing", sig, VerifyOptions{}, ErrContentMissing},
		{"digest length", sig, VerifyOptions{Digest: make([]byte, 20), DigestHash: crypto.SHA256}, ErrDigestLength},
		// Zero bytes after the ContentInfo are padding (TestTrailingZeroPadding); anything else is not.
		{"trailing data", append(bytes.Clone(sig), 1), VerifyOptions{Content: []byte("x")}, ErrMalformed},
		{"truncated", sig[:len(sig)-1], VerifyOptions{Content: []byte("x")}, ErrMalformed},
		{"empty", nil, VerifyOptions{Content: []byte("x")}, ErrMalformed},
		{"too large", sig, VerifyOptions{Content: []byte("x"), Limits: Limits{MaxBytes: 100}}, ErrTooLarge},
		{"too many certificates", sig, VerifyOptions{Content: []byte("x"), Limits: Limits{MaxCertificates: 1}}, ErrTooLarge},
		{"no certificates allowed", sig, VerifyOptions{Content: []byte("x"), Limits: Limits{MaxCertificates: -1}}, ErrTooLarge},
		{"too deep", sig, VerifyOptions{Content: []byte("x"), Limits: Limits{MaxDepth: 4}}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.der, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestUnsignedAttributesHook(t *testing.T) {
	f := newSigner(t, p256)
	token := []byte{0x30, 0x03, 0x02, 0x01, 0x05} // stands in for a TimeStampToken
	var seen []byte
	sig, err := Sign([]byte("x"), f.key, f.chain(), Options{
		UnsignedAttributes: func(sv []byte) ([]Attribute, error) {
			seen = bytes.Clone(sv)
			return []Attribute{{Type: oidName(OIDSignatureTimeStampToken).ASN1(), Values: [][]byte{token}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sd, err := Parse(sig)
	if err != nil {
		t.Fatal(err)
	}
	si := sd.SignerInfos[0]
	if !bytes.Equal(seen, si.Signature) {
		t.Error("hook did not get the signature value")
	}
	if len(si.UnsignedAttrs) != 1 || !cms.Is(si.UnsignedAttrs[0].Type, OIDSignatureTimeStampToken) ||
		!bytes.Equal(si.UnsignedAttrs[0].Values[0], token) {
		t.Fatalf("unsigned attributes %+v", si.UnsignedAttrs)
	}
	v, err := Verify(sig, VerifyOptions{Content: []byte("x"), Validator: f.ca.validator()})
	if err != nil || v.Status != policy.Valid {
		t.Fatalf("%v %s %v", err, v.Status, v.Reasons)
	}

	_, err = Sign([]byte("x"), f.key, f.chain(), Options{
		UnsignedAttributes: func([]byte) ([]Attribute, error) {
			return []Attribute{{Type: oidData.ASN1(), Values: [][]byte{{0x30, 0x05}}}}, nil
		},
	})
	if err == nil {
		t.Fatal("a broken attribute value was accepted")
	}
}

func TestSignedAttributesEncoding(t *testing.T) {
	f := newSigner(t, p256)
	tests := []struct {
		h        crypto.Hash
		at       time.Time
		timeTag  byte
		wantAlgo bool // ESSCertIDv2 carries hashAlgorithm
	}{
		{crypto.SHA256, time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC), 0x17, false},
		{crypto.SHA384, time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), 0x18, true},
		{crypto.SHA512, time.Date(1949, 12, 31, 0, 0, 0, 0, time.UTC), 0x18, true},
	}
	for _, tc := range tests {
		t.Run(tc.h.String(), func(t *testing.T) {
			sig := signIn(t, detached, []byte("x"), f, tc.h, tc.at)
			sd, err := Parse(sig)
			if err != nil {
				t.Fatal(err)
			}
			si := sd.SignerInfos[0]
			if len(si.SignedAttrs) != 4 {
				t.Fatalf("%d signed attributes", len(si.SignedAttrs))
			}
			for i := 1; i < len(si.SignedAttrs); i++ {
				a, _ := encodeAttribute(si.SignedAttrs[i-1])
				b, _ := encodeAttribute(si.SignedAttrs[i])
				if bytes.Compare(a, b) > 0 {
					t.Errorf("signed attributes not in DER order at %d", i)
				}
			}
			st, _ := findAttr(si.SignedAttrs, oidAttrSigningTime)
			if st.Values[0][0] != tc.timeTag {
				t.Errorf("signing-time tag %#x, want %#x", st.Values[0][0], tc.timeTag)
			}
			v, err := Verify(sig, VerifyOptions{Content: []byte("x"), At: time.Now(), Validator: f.ca.validator()})
			if err != nil || v.Status != policy.Valid || !v.SigningTime.Equal(tc.at) {
				t.Fatalf("%v %s %v %v", err, v.Status, v.Reasons, v.SigningTime)
			}
			ess, _ := findAttr(si.SignedAttrs, oidAttrSigningCertificateV2)
			// SEQUENCE { SEQUENCE { SEQUENCE { [AlgorithmIdentifier] OCTET STRING ...
			x := ess.Values[0]
			for range 3 {
				x = x[1+hdrLen(x[1:]):]
			}
			if got := x[0] == 0x30; got != tc.wantAlgo {
				t.Errorf("hashAlgorithm present = %v, want %v", got, tc.wantAlgo)
			}
		})
	}
}

// hdrLen is the size of the length octets at b[0].
func hdrLen(b []byte) int {
	if b[0] < 0x80 {
		return 1
	}
	return 1 + int(b[0]&0x7f)
}

func TestOIDConstants(t *testing.T) {
	for _, o := range []oidName{oidData, oidSignedData, oidAttrContentType, oidAttrMessageDigest, oidAttrSigningTime,
		oidAttrSigningCertificate, oidAttrSigningCertificateV2, oidMD5, oidSHA1, oidSHA224, oidSHA256, oidSHA384,
		oidSHA512, oidRSAEncryption, oidMD5WithRSA, oidSHA1WithRSA, oidRSASSAPSS, oidSHA256WithRSA, oidSHA384WithRSA,
		oidSHA512WithRSA, oidSHA224WithRSA, oidMGF1, oidECPublicKey, oidECDSAWithSHA1, oidECDSAWithSHA224,
		oidECDSAWithSHA256, oidECDSAWithSHA384, oidECDSAWithSHA512, OIDSignatureTimeStampToken} {
		id := o.ASN1()
		if id.String() != string(o) || !cms.Is(id, o) {
			t.Errorf("OID %s round trips as %s", o, id)
		}
		if cms.Is(id[:len(id)-1], o) || cms.Is(append(id, 1), o) {
			t.Errorf("cms.Is(%s) matches a prefix or extension", o)
		}
	}
}

func TestMultipleSigners(t *testing.T) {
	// Build a two-signer message from two one-signer messages over the same
	// content: same encapContentInfo, certificates and signerInfos joined.
	content := []byte("x")
	a, b := newSigner(t, p256), newSigner(t, rsa2048)
	sigA := signIn(t, detached, content, a, crypto.SHA256, time.Time{})
	sigB := signIn(t, detached, content, b, crypto.SHA256, time.Time{})
	two := joinSigners(t, sigA, sigB)

	pool := a.ca.pool()
	pool.AddCert(b.ca.cert)
	v, err := Verify(two, VerifyOptions{Content: content, Validator: policy.Basic{Roots: pool}})
	if err != nil || v.Status != policy.Valid {
		t.Fatalf("%v %s %v", err, v.Status, v.Reasons)
	}
	// Only a's root trusted: the worst verdict, b's reason named.
	v, err = Verify(two, VerifyOptions{Content: content, Validator: a.ca.validator()})
	if err != nil || v.Status != policy.Indeterminate || len(v.Reasons) != 1 || v.Reasons[0].Message[:9] != "signer 2:" {
		t.Fatalf("%v %s %v", err, v.Status, v.Reasons)
	}
	if v.Subject != a.cert.Subject.String() {
		t.Errorf("subject %q", v.Subject)
	}
}

// joinSigners makes one SignedData with the certificates and signer infos
// of several detached SHA-256 ones made by Sign.
func joinSigners(t *testing.T, sigs ...[]byte) []byte {
	t.Helper()
	var certs, infos [][]byte
	for _, sig := range sigs {
		s := cryptobyte.String(sig)
		var ci, sd, el cryptobyte.String
		if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.SkipASN1(cbasn1.OBJECT_IDENTIFIER) ||
			!ci.ReadASN1(&ci, cbasn1.Tag(0).Constructed().ContextSpecific()) || !ci.ReadASN1(&sd, cbasn1.SEQUENCE) ||
			!sd.SkipASN1(cbasn1.INTEGER) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) ||
			!sd.ReadASN1(&el, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			t.Fatal("cannot take apart a signature")
		}
		for !el.Empty() {
			var c cryptobyte.String
			el.ReadAnyASN1Element(&c, nil)
			certs = append(certs, c)
		}
		if !sd.ReadASN1(&el, cbasn1.SET) {
			t.Fatal("no signerInfos")
		}
		infos = append(infos, el)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData.ASN1())
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgorithm(b, oidSHA256, nil) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(setOf(certs)) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(setOf(infos)) })
			})
		})
	})
	return b.BytesOrPanic()
}

// TestECDSACheckSampled: with a Sampler, one ECDSA signature in Every is
// verified (the first included), so a token that keeps returning wrong
// signatures is still caught; RSA is verified every time regardless.
func TestECDSACheckSampled(t *testing.T) {
	ec := newSigner(t, p256)
	s := &Sampler{Every: 4}
	caught := 0
	for i := range 8 {
		_, err := Sign([]byte("x"), brokenSigner{ec.key}, ec.chain(), Options{ECDSACheck: s})
		if err != nil {
			caught++
			if i%4 != 0 {
				t.Errorf("signature %d verified, want only every 4th", i)
			}
		}
	}
	if caught != 2 {
		t.Errorf("%d of 8 wrong ECDSA signatures caught, want 2", caught)
	}
	for range 3 { // the sampled-out good signatures are still good
		if _, err := Sign([]byte("x"), ec.key, ec.chain(), Options{ECDSACheck: s}); err != nil {
			t.Fatal(err)
		}
	}
	r := newSigner(t, rsa2048)
	for i := range 4 {
		if _, err := Sign([]byte("x"), brokenSigner{r.key}, r.chain(), Options{ECDSACheck: &Sampler{Every: 1 << 20}}); err == nil {
			t.Fatalf("wrong RSA signature %d not caught", i)
		}
	}
}

// TestRSACheckSampled: RSA signatures are all verified unless RSACheck
// samples them (a token that checks its own CRT results); then one in
// Every is, the first included.
func TestRSACheckSampled(t *testing.T) {
	r := newSigner(t, rsa2048)
	for _, every := range []uint64{0, 1, 3} {
		var s *Sampler
		if every > 0 {
			s = &Sampler{Every: every}
		}
		caught := 0
		for i := range 6 {
			_, err := Sign([]byte("x"), brokenSigner{r.key}, r.chain(), Options{RSACheck: s, ECDSACheck: &Sampler{Every: 1 << 20}})
			if err != nil {
				caught++
			}
			if want := every < 2 || i%int(every) == 0; (err != nil) != want {
				t.Errorf("every %d: signature %d caught %v, want %v", every, i, err != nil, want)
			}
		}
		if want := map[uint64]int{0: 6, 1: 6, 3: 2}[every]; caught != want {
			t.Errorf("every %d: %d of 6 wrong RSA signatures caught, want %d", every, caught, want)
		}
		if _, err := Sign([]byte("x"), r.key, r.chain(), Options{RSACheck: s}); err != nil {
			t.Fatal(err)
		}
	}
}
