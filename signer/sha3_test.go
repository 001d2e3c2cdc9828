package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// algSpec is how a crafted signature names and makes its algorithms.
type algSpec struct {
	digest   crypto.Hash // the digestAlgorithm, and the hash of the attributes
	sigOID   oidName
	params   []byte // signatureAlgorithm parameters, DER; nil for absent
	signWith crypto.Hash
	pssSalt  int // > 0: RSASSA-PSS with this salt, else PKCS #1 v1.5 (RSA)
}

// craftAlg makes a detached SignedData over content with the CAdES signed
// attributes, naming and signing with the algorithms of spec, whatever
// they are: consistent ones and the inconsistent ones no signer should
// make.
func craftAlg(t testing.TB, f signerFixture, content []byte, spec algSpec) []byte {
	t.Helper()
	ch := spec.digest.New()
	ch.Write(content)
	ct := attr(t, oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData.ASN1()) })
	md := attr(t, oidAttrMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(ch.Sum(nil)) })
	st := attr(t, oidAttrSigningTime, func(b *cryptobyte.Builder) { addTime(b, time.Now().Add(-time.Minute)) })
	body := setOf([][]byte{ct, md, st})
	set := cryptobyte.NewBuilder(nil)
	set.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(body) })
	h := spec.signWith.New()
	h.Write(set.BytesOrPanic())
	d := h.Sum(nil)
	var sig []byte
	var err error
	switch k := f.key.(type) {
	case *rsa.PrivateKey:
		if spec.pssSalt > 0 {
			sig, err = rsa.SignPSS(rand.Reader, k, spec.signWith, d, &rsa.PSSOptions{SaltLength: spec.pssSalt, Hash: spec.signWith})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, spec.signWith, d)
		}
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, k, d)
	}
	if err != nil {
		t.Fatal(err)
	}
	digestAlg, ok := digestOID(spec.digest)
	if !ok {
		digestAlg = oidName("2.16.840.1.101.3.4.2." + map[crypto.Hash]string{crypto.SHA3_256: "8", crypto.SHA3_384: "9", crypto.SHA3_512: "10"}[spec.digest])
	}
	return detachedSignedData(f, digestAlg, body, spec.sigOID, spec.params, sig)
}

// pssParams encodes RSASSA-PSS-params (RFC 4055 3.1) with the SHA-3
// identifiers of RFC 8702 (parameters absent); trailer 1 is left out as DER
// requires.
func pssParams(hash, mgfHash string, salt, trailer int64) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { addAlgorithm(b, oidName(hash), nil) })
		b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oidMGF1.ASN1())
				addAlgorithm(b, oidName(mgfHash), nil)
			})
		})
		b.AddASN1(cbasn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(salt) })
		if trailer != 1 {
			b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(trailer) })
		}
	})
	return b.BytesOrPanic()
}

// The SHA-3 identifiers (NIST CSOR), spelled out here so the test does not
// just repeat the package's constants.
const (
	tSHA3_256       = "2.16.840.1.101.3.4.2.8"
	tSHA3_384       = "2.16.840.1.101.3.4.2.9"
	tSHA3_512       = "2.16.840.1.101.3.4.2.10"
	tRSASHA3_256    = "2.16.840.1.101.3.4.3.14"
	tRSASHA3_384    = "2.16.840.1.101.3.4.3.15"
	tRSASHA3_512    = "2.16.840.1.101.3.4.3.16"
	tECDSASHA3_256  = "2.16.840.1.101.3.4.3.10"
	tECDSASHA3_384  = "2.16.840.1.101.3.4.3.11"
	tECDSASHA3_512  = "2.16.840.1.101.3.4.3.12"
	tSHA256         = "2.16.840.1.101.3.4.2.1"
	tSHA256WithRSA  = "1.2.840.113549.1.1.11"
	tRSASSAPSS      = "1.2.840.113549.1.1.10"
	tRSAEncryption  = "1.2.840.113549.1.1.1"
	tUnknownSigAlgo = "1.3.6.1.4.1.99999.1"
)

// TestSHA3Crafted: SHA-3 signatures of every kind ETSI TS 119 312 lists
// verify, and inconsistent or unsupported algorithm combinations are a
// verdict with a precise reason, never a parse error.
func TestSHA3Crafted(t *testing.T) {
	r, p256k, p384k := newSigner(t, rsa2048), newSigner(t, p256), newSigner(t, p384)
	content := []byte("Přihláška\n")
	s3, s384, s512 := crypto.SHA3_256, crypto.SHA3_384, crypto.SHA3_512
	tests := []struct {
		name   string
		f      signerFixture
		spec   algSpec
		status policy.Status
		code   policy.Code
		msg    string // in the reason's message
	}{
		{"rsaEncryption, SHA3-256", r, algSpec{s3, tRSAEncryption, derNull(), s3, 0}, policy.Valid, "", ""},
		{"id-rsassa-pkcs1-v1_5-with-sha3-256", r, algSpec{s3, tRSASHA3_256, nil, s3, 0}, policy.Valid, "", ""},
		{"id-rsassa-pkcs1-v1_5-with-sha3-384", r, algSpec{s384, tRSASHA3_384, nil, s384, 0}, policy.Valid, "", ""},
		{"id-rsassa-pkcs1-v1_5-with-sha3-512", r, algSpec{s512, tRSASHA3_512, nil, s512, 0}, policy.Valid, "", ""},
		{"RSASSA-PSS SHA3-256 MGF1 SHA3-256", r, algSpec{s3, tRSASSAPSS, pssParams(tSHA3_256, tSHA3_256, 32, 1), s3, 32}, policy.Valid, "", ""},
		{"RSASSA-PSS SHA3-512 MGF1 SHA3-512", r, algSpec{s512, tRSASSAPSS, pssParams(tSHA3_512, tSHA3_512, 64, 1), s512, 64}, policy.Valid, "", ""},
		{"id-ecdsa-with-sha3-256", p256k, algSpec{s3, tECDSASHA3_256, nil, s3, 0}, policy.Valid, "", ""},
		{"id-ecdsa-with-sha3-384", p384k, algSpec{s384, tECDSASHA3_384, nil, s384, 0}, policy.Valid, "", ""},
		{"id-ecdsa-with-sha3-512", p256k, algSpec{s512, tECDSASHA3_512, nil, s512, 0}, policy.Valid, "", ""},

		// The digest algorithm and the signature algorithm disagree.
		{"SHA3-256 digest, sha256WithRSAEncryption", r, algSpec{s3, tSHA256WithRSA, derNull(), s3, 0}, policy.Invalid, policy.CodeSignatureMismatch, "sha256WithRSAEncryption uses SHA-256, the digest algorithm is SHA3-256"},
		{"SHA-256 digest, id-rsassa-pkcs1-v1_5-with-sha3-256", r, algSpec{crypto.SHA256, tRSASHA3_256, nil, crypto.SHA256, 0}, policy.Invalid, policy.CodeSignatureMismatch, "uses SHA3-256, the digest algorithm is SHA-256"},
		{"SHA3-384 digest, id-ecdsa-with-sha3-256", p256k, algSpec{s384, tECDSASHA3_256, nil, s384, 0}, policy.Invalid, policy.CodeSignatureMismatch, "uses SHA3-256, the digest algorithm is SHA3-384"},
		{"SHA-256 digest, PSS with SHA3-256", r, algSpec{crypto.SHA256, tRSASSAPSS, pssParams(tSHA3_256, tSHA3_256, 32, 1), crypto.SHA256, 32}, policy.Invalid, policy.CodeSignatureMismatch, "uses SHA3-256, the digest algorithm is SHA-256"},

		// RSASSA-PSS parameters: inconsistent or unsupported.
		{"PSS MGF1 with another hash", r, algSpec{s3, tRSASSAPSS, pssParams(tSHA3_256, tSHA256, 32, 1), s3, 32}, policy.Indeterminate, CodeUnsupportedAlgorithm, "MGF1 with SHA-256"},
		{"PSS trailer field 2", r, algSpec{s3, tRSASSAPSS, pssParams(tSHA3_256, tSHA3_256, 32, 2), s3, 32}, policy.Invalid, policy.CodeMalformed, "trailerField"},
		{"PSS without parameters", r, algSpec{s3, tRSASSAPSS, nil, s3, 32}, policy.Invalid, policy.CodeMalformed, "parameters"},
		{"PSS with an unknown hash", r, algSpec{s3, tRSASSAPSS, pssParams("1.2.3.4", "1.2.3.4", 32, 1), s3, 32}, policy.Indeterminate, CodeUnsupportedAlgorithm, "1.2.3.4"},
		{"PSS salt length not the one used", r, algSpec{s3, tRSASSAPSS, pssParams(tSHA3_256, tSHA3_256, 20, 1), s3, 32}, policy.Invalid, policy.CodeSignatureMismatch, ""},
		{"unknown signature algorithm", r, algSpec{s3, tUnknownSigAlgo, nil, s3, 0}, policy.Indeterminate, CodeUnsupportedAlgorithm, tUnknownSigAlgo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der := craftAlg(t, tc.f, content, tc.spec)
			v, err := Verify(der, VerifyOptions{Content: content, Validator: tc.f.ca.validator()})
			if err != nil {
				t.Fatalf("want a verdict, got %v", err)
			}
			if v.Status != tc.status || (tc.code != "" && !hasReason(v, tc.code)) {
				t.Fatalf("got %s %v, want %s %s", v.Status, v.Reasons, tc.status, tc.code)
			}
			if tc.msg != "" && !strings.Contains(reasonsText(v), tc.msg) {
				t.Errorf("reasons %v lack %q", v.Reasons, tc.msg)
			}
		})
	}
}

func reasonsText(v policy.Verdict) string {
	var b strings.Builder
	for _, r := range v.Reasons {
		b.WriteString(string(r.Code) + ": " + r.Message + "\n")
	}
	return b.String()
}

// TestSHA3OpenSSL: CAdES signatures OpenSSL makes with -md sha3-256/384/512
// (RSA PKCS #1 v1.5, written as rsaEncryption) verify, detached and
// attached. The OpenSSL 3.0
// on the test machines cannot make RSASSA-PSS or ECDSA CMS signatures with
// SHA-3 ("rsa_generate_signature_aid", "unsupported signature
// algorithm"); when it can, those cases run too, and TestSHA3Crafted
// covers them regardless.
func TestSHA3OpenSSL(t *testing.T) {
	testtool.OpenSSL(t)
	r, e := newSigner(t, rsa2048), newSigner(t, p256)
	content := []byte("<PRIHL>SHA-3</PRIHL>\n")
	dir := t.TempDir()
	in := writeFile(t, dir, "data", content)
	type signerFiles struct{ cert, key string }
	files := map[string]signerFiles{
		"rsa": {writeFile(t, dir, "r.pem", certPEM(r.cert)), writeFile(t, dir, "rk.pem", keyPEM(t, r.key))},
		"ec":  {writeFile(t, dir, "e.pem", certPEM(e.cert)), writeFile(t, dir, "ek.pem", keyPEM(t, e.key))},
	}
	validators := map[string]policy.Validator{"rsa": r.ca.validator(), "ec": e.ca.validator()}
	tests := []struct {
		name, key string
		args      []string
		optional  bool // OpenSSL 3.0 cannot make it
	}{
		{"sha3-256", "rsa", []string{"-md", "sha3-256"}, false},
		{"sha3-384 cades", "rsa", []string{"-md", "sha3-384", "-cades"}, false},
		{"sha3-512 attached", "rsa", []string{"-md", "sha3-512", "-nodetach"}, false},
		{"sha3-256 pss", "rsa", []string{"-md", "sha3-256", "-keyopt", "rsa_padding_mode:pss"}, true},
		{"sha3-256 ecdsa", "ec", []string{"-md", "sha3-256"}, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "sig"+string(rune('a'+i)))
			args := append([]string{"cms", "-sign", "-binary", "-outform", "DER", "-in", in,
				"-signer", files[tc.key].cert, "-inkey", files[tc.key].key, "-out", out}, tc.args...)
			if tc.optional {
				if _, err := testtool.TryOpenSSL(t, args...); err != nil {
					t.Skipf("this OpenSSL cannot sign %s: %v", tc.name, err)
				}
			} else {
				testtool.RunOpenSSL(t, args...)
			}
			v, err := Verify(readFile(t, out), VerifyOptions{Content: content, Validator: validators[tc.key]})
			if err != nil {
				t.Fatalf("want a verdict, got %v", err)
			}
			if v.Status != policy.Valid {
				t.Fatalf("%s %v", v.Status, v.Reasons)
			}
			sd, err := Parse(readFile(t, out))
			if err != nil || !strings.HasPrefix(sd.SignerInfos[0].Hash.String(), "SHA3-") {
				t.Fatalf("parsed hash %v, %v", sd.SignerInfos[0].Hash, err)
			}
		})
	}
}
