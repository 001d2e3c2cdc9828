package signer

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// The options and hooks package tsa builds on: another eContentType,
// omitted certificates, certificates known out of band, the purpose, and
// the CAdES-T TimestampVerifier.

func TestContentTypeAndOmittedCertificates(t *testing.T) {
	f := newSigner(t, p256)
	const tstInfo = "1.2.840.113549.1.9.16.1.4"
	content := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	for _, tc := range []struct {
		name string
		opts Options
		want error
	}{
		{"not an OID", Options{Attached: true, ContentType: "tst-info"}, ErrContentType},
		{"detached TSTInfo", Options{ContentType: tstInfo}, ErrContentType},
		{"attached TSTInfo", Options{Attached: true, ContentType: tstInfo, OmitCertificates: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := Sign(content, f.key, f.chain(), tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			sd, err := Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			if sd.Version != 3 || sd.ContentType.String() != tstInfo || len(sd.Certificates) != 0 || !bytes.Equal(sd.Content, content) {
				t.Fatalf("version %d, type %v, %d certificates", sd.Version, sd.ContentType, len(sd.Certificates))
			}
			v, err := Verify(der, VerifyOptions{Validator: f.ca.validator()})
			if err != nil || v.Status != policy.Indeterminate || !hasReason(v, policy.CodeSignerNotFound) {
				t.Fatalf("without certificates: %v %v %v", err, v.Status, v.Reasons)
			}
			v, err = Verify(der, VerifyOptions{Validator: f.ca.validator(), ExtraCertificates: []*x509.Certificate{f.cert}})
			if err != nil || v.Status != policy.Valid {
				t.Fatalf("with the certificate out of band: %v %v %v", err, v.Status, v.Reasons)
			}
			// The purpose reaches the validator: a signing certificate is no
			// time-stamping certificate.
			v, _ = Verify(der, VerifyOptions{Validator: f.ca.validator(), ExtraCertificates: []*x509.Certificate{f.cert}, Purpose: policy.PurposeTimestamping})
			if v.Status != policy.Invalid || !hasReason(v, policy.CodeKeyUsage) {
				t.Fatalf("purpose timestamping: %v %v", v.Status, v.Reasons)
			}
		})
	}
}

// stubTimestamps is a TimestampVerifier with fixed answers, recording what
// it was asked.
type stubTimestamps struct {
	at      time.Time
	verdict policy.Verdict
	got     *[]byte
}

func (s stubTimestamps) VerifyTimestamp(token, sigValue []byte) (time.Time, policy.Verdict, error) {
	*s.got = append([]byte(nil), sigValue...)
	return s.at, s.verdict, nil
}

func TestTimestampVerifierHook(t *testing.T) {
	f := newSigner(t, p256)
	var seen []byte
	der, err := Sign([]byte("data"), f.key, f.chain(), Options{
		UnsignedAttributes: func(sig []byte) ([]Attribute, error) {
			seen = append([]byte(nil), sig...)
			return []Attribute{{Type: oidName(OIDSignatureTimeStampToken).ASN1(), Values: [][]byte{{0x30, 0x00}}}}, nil
		},
		SigningTime: time.Now().Add(-time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	stampAt := time.Now().Add(-30 * time.Second).Truncate(time.Second)
	var asked []byte
	v, err := Verify(der, VerifyOptions{Content: []byte("data"), Validator: f.ca.validator(),
		TimestampVerifier: stubTimestamps{at: stampAt, verdict: policy.Verdict{Status: policy.Valid}, got: &asked}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != policy.Valid || !v.TimestampTime.Equal(stampAt) || !v.ValidatedAt.Equal(stampAt) || !bytes.Equal(asked, seen) {
		t.Fatalf("verdict %v at %v / %v, hook saw the signature value: %v", v.Status, v.TimestampTime, v.ValidatedAt, bytes.Equal(asked, seen))
	}
	bad := policy.Verdict{Status: policy.Invalid, Reasons: []policy.Reason{{Code: policy.CodeDigestMismatch, Message: "imprint"}}}
	v, _ = Verify(der, VerifyOptions{Content: []byte("data"), Validator: f.ca.validator(),
		TimestampVerifier: stubTimestamps{at: stampAt, verdict: bad, got: &asked}})
	if v.Status != policy.Invalid || !v.TimestampTime.IsZero() || !hasReason(v, policy.CodeDigestMismatch) {
		t.Fatalf("an invalid time-stamp: %v %v", v.Status, v.Reasons)
	}
}
