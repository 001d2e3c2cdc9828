package signer

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// TestAttachedContentGiven: an attached signature verified with content or
// a digest the caller supplies is judged against both: they must be the
// embedded content (docs/security.md, "Attached signatures and the content
// the caller supplies"). Before, the caller's content was dropped and a
// signature over A was VALID "for" B.
func TestAttachedContentGiven(t *testing.T) {
	f := newSigner(t, p256)
	a, b := []byte("filing A\n"), []byte("filing B\n")
	sumA, sumB := sha256.Sum256(a), sha256.Sum256(b)
	sumA512 := sha512.Sum512(a)
	sig := signIn(t, attached, a, f, crypto.SHA256, time.Time{})
	tests := []struct {
		name string
		opts VerifyOptions
		want policy.Code // "" for VALID
		cmp  ContentSource
	}{
		{"nothing given", VerifyOptions{}, "", ""},
		{"the same content", VerifyOptions{Content: a}, "", ContentGiven},
		{"other content", VerifyOptions{Content: b}, CodeContentMismatch, ContentGiven},
		{"empty content", VerifyOptions{Content: []byte{}}, CodeContentMismatch, ContentGiven},
		{"content with a suffix", VerifyOptions{Content: append(append([]byte(nil), a...), 'x')}, CodeContentMismatch, ContentGiven},
		{"its digest", VerifyOptions{Digest: sumA[:]}, "", DigestGiven},
		{"its digest, SHA-512", VerifyOptions{Digest: sumA512[:], DigestHash: crypto.SHA512}, "", DigestGiven},
		{"another digest", VerifyOptions{Digest: sumB[:]}, CodeContentMismatch, DigestGiven},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Validator = f.ca.validator()
			r, err := VerifyReport(sig, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			// Whatever was given, the verdict is about the embedded content.
			c := r.Content
			if c.Source != ContentEmbedded || c.Compared != tc.cmp || !bytes.Equal(c.Embedded, a) || c.Hash != crypto.SHA256 || !bytes.Equal(c.Digest, sumA[:]) {
				t.Errorf("content %s compared %q, embedded %q, %v %x", c.Source, c.Compared, c.Embedded, c.Hash, c.Digest)
			}
			v := r.Verdict
			if tc.want == "" {
				if v.Status != policy.Valid {
					t.Fatalf("%s %v", v.Status, v.Reasons)
				}
				return
			}
			if v.Status != policy.Invalid || !hasReason(v, tc.want) {
				t.Fatalf("got %s %v, want INVALID %s", v.Status, v.Reasons, tc.want)
			}
		})
	}
}

// TestVerifiedContentDetached: a detached signature's report names the
// caller's content or digest, and returns no content.
func TestVerifiedContentDetached(t *testing.T) {
	f := newSigner(t, p256)
	a := []byte("filing A\n")
	sumA := sha256.Sum256(a)
	sig := signIn(t, detached, a, f, crypto.SHA384, time.Time{})
	sum384 := crypto.SHA384.New()
	sum384.Write(a)
	for _, tc := range []struct {
		opts   VerifyOptions
		source ContentSource
		hash   crypto.Hash
		digest []byte
		status policy.Status
	}{
		{VerifyOptions{Content: a}, ContentGiven, crypto.SHA384, sum384.Sum(nil), policy.Valid},
		{VerifyOptions{Digest: sumA[:]}, DigestGiven, crypto.SHA256, sumA[:], policy.Invalid}, // the signer used SHA-384
	} {
		tc.opts.Validator = f.ca.validator()
		r, err := VerifyReport(sig, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		c := r.Content
		if r.Verdict.Status != tc.status || c.Source != tc.source || c.Compared != "" || c.Embedded != nil || c.Hash != tc.hash || !bytes.Equal(c.Digest, tc.digest) {
			t.Errorf("%s: %s %v; content %s %q %v %x", tc.source, r.Verdict.Status, r.Verdict.Reasons, c.Source, c.Compared, c.Hash, c.Digest)
		}
	}
}

// TestAttachedContentGivenOpenSSL: the same rule for OpenSSL's streamed
// (BER) attached signatures; OpenSSL itself says "content verify error".
func TestAttachedContentGivenOpenSSL(t *testing.T) {
	der := readTestdata(t, "openssl-attached-ber.p7s")
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v, err := Verify(der, VerifyOptions{At: at, Validator: goldenCA(t), Content: []byte("not the embedded content")})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != policy.Invalid || !hasReason(v, CodeContentMismatch) {
		t.Fatalf("got %s %v", v.Status, v.Reasons)
	}
}
