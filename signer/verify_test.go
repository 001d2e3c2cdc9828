package signer

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// attr encodes one signed attribute with one value.
func attr(t testing.TB, o oidName, value func(*cryptobyte.Builder)) []byte {
	t.Helper()
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(o.ASN1())
		b.AddASN1(cbasn1.SET, value)
	})
	return b.BytesOrPanic()
}

// craft makes a detached SHA-256 SignedData with exactly the signed
// attributes given, in the order given, signed by f: the messages Sign
// would never make. With signSorted the signature is over the attributes
// in DER order, as OpenSSL computes it whatever the order in the message.
func craft(t testing.TB, f signerFixture, signSorted bool, attrs ...[]byte) []byte {
	t.Helper()
	body := bytes.Join(attrs, nil)
	set := cryptobyte.NewBuilder(nil)
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		if signSorted {
			b.AddBytes(setOf(attrs))
		} else {
			b.AddBytes(body)
		}
	})
	d := sha256.Sum256(set.BytesOrPanic())
	sig, err := f.key.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	sigAlg, params, err := checkKey(f.key, f.chain(), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return detachedSignedData(f, oidSHA256, body, sigAlg, params, sig)
}

// detachedSignedData wraps one SignerInfo of f (issuer and serial, the
// digest algorithm, the signed attributes' content body, the signature
// algorithm with its parameters and sig) into a detached id-data
// SignedData with f's certificate: the frame of the messages the tests
// craft by hand.
func detachedSignedData(f signerFixture, digestAlg oidName, body []byte, sigAlg oidName, params, sig []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedData.ASN1())
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgorithm(b, digestAlg, nil) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(f.cert.Raw) })
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(f.cert.RawIssuer)
							b.AddASN1BigInt(f.cert.SerialNumber)
						})
						addAlgorithm(b, digestAlg, nil)
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(body) })
						addAlgorithm(b, sigAlg, params)
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}

func TestSignedAttributeChecks(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("content")
	sum := sha256.Sum256(content)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	twin := f.ca.issue(t, f.key, "twin", time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))

	ct := attr(t, oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
	ctOther := attr(t, oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidSignedData.ASN1()) })
	md := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(sum[:]) })
	st := attr(t, oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, at) })
	st2 := attr(t, oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, at.Add(time.Hour)) })
	ess := attr(t, oidAttrSigningCertificateV2, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, crypto.SHA256, f.cert) })
	essTwin := attr(t, oidAttrSigningCertificateV2, func(b *cryptobyte.Builder) { addSigningCertificateV2(b, crypto.SHA256, twin) })
	essV1 := attr(t, oidAttrSigningCertificate, func(b *cryptobyte.Builder) {
		h := crypto.SHA1.New()
		h.Write(twin.Raw)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1OctetString(h.Sum(nil)) })
			})
		})
	})
	badMD := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1Int64(5) })

	tests := []struct {
		name   string
		attrs  [][]byte
		sorted bool
		want   policy.Code // "" for VALID
		err    error
	}{
		{"all, DER order", [][]byte{ct, md, st, ess}, false, "", nil},
		// In DER order these are ct, st, md.
		{"unsorted, signed as sent", [][]byte{st, ct, md}, false, "", nil},
		{"unsorted, signed in DER order", [][]byte{st, ct, md}, true, "", nil},
		{"no content-type", [][]byte{md, st}, false, policy.CodeMalformed, nil},
		{"other content-type", [][]byte{ctOther, md}, false, policy.CodeMalformed, nil},
		{"no message-digest", [][]byte{ct, st}, false, policy.CodeDigestMismatch, nil},
		{"two signing-times", [][]byte{ct, md, st, st2}, false, policy.CodeMalformed, nil},
		{"signing-certificate-v2 of another certificate", [][]byte{ct, md, essTwin}, false, CodeSigningCertificateMismatch, nil},
		{"signing-certificate of another certificate", [][]byte{ct, md, essV1}, false, CodeSigningCertificateMismatch, nil},
		{"message-digest not an OCTET STRING", [][]byte{ct, badMD}, false, "", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Verify(craft(t, f, tc.sorted, tc.attrs...), VerifyOptions{Content: content, Validator: f.ca.validator(), At: time.Now()})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
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

func TestUnknownDigestAlgorithm(t *testing.T) {
	f := newSigner(t, p256)
	sig := signIn(t, detached, []byte("x"), f, crypto.SHA256, time.Time{})
	// id-sha256 becomes 2.16.840.1.101.3.4.2.127 in both places.
	sha256OID := []byte{0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	fake := bytes.Clone(sha256OID)
	fake[len(fake)-1] = 0x7f
	sig = bytes.ReplaceAll(sig, sha256OID, fake)
	_, err := Verify(sig, VerifyOptions{Content: []byte("x")})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "signer info 1: unknown digest algorithm 2.16.840.1.101.3.4.2.127") {
		t.Fatalf("got %v", err)
	}
}

// TestMutations flips every byte and cuts at every length of real
// signatures (ours and OpenSSL's BER): no panic, only documented errors,
// verdicts always with reasons unless VALID.
func TestMutations(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("content")
	inputs := [][]byte{
		signIn(t, attached, content, f, crypto.SHA256, time.Time{}),
		readTestdata(t, "openssl-attached-ber.p7s"),
	}
	for _, in := range inputs {
		for i := range in {
			for _, m := range [][]byte{in[:i], mutate(in, i, 0xff), mutate(in, i, 0x80), mutate(in, i, 0x01)} {
				v, err := Verify(m, VerifyOptions{Content: content, Validator: f.ca.validator()})
				testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge)
				if err == nil {
					checkVerdict(t, v)
				}
			}
		}
	}
}

func mutate(b []byte, i int, x byte) []byte {
	b = bytes.Clone(b)
	b[i] ^= x
	return b
}

func TestWeakAlgorithmsReported(t *testing.T) {
	testtool.OpenSSL(t)
	f := newSigner(t, rsa2048)
	content := []byte("legacy")
	dir := t.TempDir()
	for _, args := range [][]string{{"-md", "sha1"}, {"-md", "sha1", "-cades"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := dir + "/sig" + args[len(args)-1]
			testtool.RunOpenSSL(t, append([]string{"cms", "-sign", "-binary", "-outform", "DER", "-in", writeFile(t, dir, "data", content),
				"-signer", writeFile(t, dir, "cert.pem", certPEM(f.cert)), "-inkey", writeFile(t, dir, "key.pem", keyPEM(t, f.key)),
				"-out", out}, args...)...)
			v, err := Verify(readFile(t, out), VerifyOptions{Content: content, Validator: f.ca.validator()})
			if err != nil {
				t.Fatal(err)
			}
			// Weak, but otherwise sound: only WEAK_ALGORITHM.
			if v.Status != policy.Invalid || len(v.Reasons) != 1 || v.Reasons[0].Code != policy.CodeWeakAlgorithm {
				t.Fatalf("got %s %v", v.Status, v.Reasons)
			}
		})
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
