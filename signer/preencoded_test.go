package signer

import (
	"bytes"
	"crypto"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

// TestPreEncodedMatchesFresh holds the pre-encoded DER (preencoded.go) to
// what encoding/asn1 writes for the same values, and a signature made with
// a warm cache to the one made with a cold cache (RSA PKCS#1 v1.5 is
// deterministic), for each hash: a cache keyed by the wrong thing would
// hand one certificate's or hash's bytes to another.
func TestPreEncodedMatchesFresh(t *testing.T) {
	for _, o := range []oidName{oidSignedData, oidData, oidAttrContentType, oidSHA256, oidSHA512, oidECDSAWithSHA384, oidAttrSigningCertificateV2, "1.2.3.4.5.6.7.8.9.1000000"} {
		want, err := asn1.Marshal(o.ASN1())
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := derOIDOf(o); !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: pre-encoded %x, encoding/asn1 %x", o, got, want)
		}
	}

	f := newSigner(t, rsa2048)
	other := newSigner(t, rsa2048)
	at := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		h    crypto.Hash
	}{{"sha256", crypto.SHA256}, {"sha384", crypto.SHA384}, {"sha512", crypto.SHA512}} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := partsOf(tc.h, f.chain()[0])
			if err != nil {
				t.Fatal(err)
			}
			leaf := f.chain()[0]
			type issuerAndSerial struct {
				Issuer asn1.RawValue
				Serial *big.Int
			}
			want, err := asn1.Marshal(issuerAndSerial{asn1.RawValue{FullBytes: leaf.RawIssuer}, leaf.SerialNumber})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p.issuerSerial, want) {
				t.Errorf("IssuerAndSerialNumber %x, want %x", p.issuerSerial, want)
			}
			if q, _ := partsOf(tc.h, other.chain()[0]); bytes.Equal(q.essAttr, p.essAttr) {
				t.Error("two certificates got the same signing-certificate-v2 attribute")
			}

			digest := tc.h.New().Sum(nil)
			opts := Options{Hash: tc.h, SigningTime: at}
			leavesMu.Lock()
			clear(leaves)
			leavesMu.Unlock()
			cold, err := SignDigest(digest, f.key, f.chain(), opts)
			if err != nil {
				t.Fatal(err)
			}
			warm, err := SignDigest(digest, f.key, f.chain(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(cold, warm) {
				t.Fatal("the signature with a warm cache differs from the cold one")
			}
		})
	}
}

// TestSignDigestAllocs bounds the allocations of a SignedData over a
// digest around an RSA signature (the key's own allocations included):
// 101 before the OIDs and the certificate's parts were pre-encoded.
func TestSignDigestAllocs(t *testing.T) {
	f := newSigner(t, rsa2048)
	digest := make([]byte, 32)
	chain := f.chain()
	opts := Options{Hash: crypto.SHA256}
	if _, err := SignDigest(digest, f.key, chain, opts); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(20, func() {
		if _, err := SignDigest(digest, f.key, chain, opts); err != nil {
			t.Fatal(err)
		}
	})
	const most = 80
	if n > most {
		t.Errorf("SignDigest allocates %.0f times a signature; at most %d with the pre-encoded parts", n, most)
	}
}

// TestPreEncodedBadOIDIsAnError: a content type the dotted-form check
// accepts but DER cannot encode (a second arc of 40 or more under 0 or 1)
// is an error from Sign, as before the pre-encoding, never a panic.
func TestPreEncodedBadOIDIsAnError(t *testing.T) {
	f := newSigner(t, rsa2048)
	for _, ct := range []string{"1.99", "0.40.1"} {
		t.Run(ct, func(t *testing.T) {
			_, err := Sign([]byte("x"), f.key, f.chain(), Options{Attached: true, ContentType: ct})
			if err == nil {
				t.Fatalf("content type %s: no error", ct)
			}
		})
	}
}
