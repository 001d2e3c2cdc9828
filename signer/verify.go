package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"
)

// CodeSigningCertificateMismatch: the ESS signing-certificate(-v2) signed
// attribute names another certificate than the one that verifies the
// signature (RFC 5035 5.4).
const CodeSigningCertificateMismatch policy.Code = "SIGNING_CERTIFICATE_MISMATCH"

// minRSABits is the smallest RSA modulus verified at all; smaller keys are
// reported as WEAK_ALGORITHM (crypto/rsa refuses them anyway).
const minRSABits = 1024

// contentSource gives the digest of the signed content, from the content or
// from the client's digest of it.
type contentSource struct {
	content    []byte
	hasContent bool
	digest     []byte
	digestHash crypto.Hash
	cache      map[crypto.Hash][]byte // signers usually share a hash; the content may be 20 MiB
}

// digestFor returns the content's digest with h, or a problem for the
// verdict when only a digest with another hash is known.
func (c *contentSource) digestFor(h crypto.Hash) ([]byte, string) {
	if !c.hasContent {
		if h != c.digestHash {
			return nil, fmt.Sprintf("the digest given is %v, the signer used %v", c.digestHash, h)
		}
		return c.digest, ""
	}
	if d, ok := c.cache[h]; ok {
		return d, ""
	}
	hh := h.New()
	hh.Write(c.content)
	d := hh.Sum(nil)
	c.cache[h] = d
	return d, ""
}

func verify(der []byte, opts VerifyOptions) (policy.Verdict, error) {
	sd, err := ParseWithLimits(der, opts.Limits)
	if err != nil {
		return policy.Verdict{}, err
	}
	if len(sd.SignerInfos) == 0 {
		return policy.Verdict{}, malformedf("no signer infos (a certificates-only message is not a signature)")
	}
	src := &contentSource{cache: map[crypto.Hash][]byte{}}
	switch {
	case !sd.Detached:
		src.content, src.hasContent = sd.Content, true
	case opts.Content != nil:
		src.content, src.hasContent = opts.Content, true
	case opts.Digest != nil:
		h := opts.DigestHash
		if h == 0 {
			h = crypto.SHA256
		}
		if _, ok := digestOID(h); !ok {
			return policy.Verdict{}, fmt.Errorf("%w: %v", ErrUnsupportedHash, h)
		}
		if len(opts.Digest) != h.Size() {
			return policy.Verdict{}, fmt.Errorf("%w: %d bytes for %v", ErrDigestLength, len(opts.Digest), h)
		}
		src.digest, src.digestHash = opts.Digest, h
	default:
		return policy.Verdict{}, ErrContentMissing
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}

	verdicts := make([]policy.Verdict, len(sd.SignerInfos))
	for i := range sd.SignerInfos {
		if verdicts[i], err = verifySigner(sd, &sd.SignerInfos[i], src, opts, now); err != nil {
			return policy.Verdict{}, within(fmt.Sprintf("signer info %d", i+1), err)
		}
	}
	if len(verdicts) == 1 {
		return verdicts[0], nil
	}
	// All signers must verify: the verdict is the worst, the signer details
	// are the first signer's, the reasons everyone's, each saying whose.
	out := verdicts[0]
	out.Reasons = nil
	for i, v := range verdicts {
		out.Status = worse(out.Status, v.Status)
		for _, r := range v.Reasons {
			out.Reasons = append(out.Reasons, policy.Reason{Code: r.Code, Message: fmt.Sprintf("signer %d: %s", i+1, r.Message)})
		}
	}
	return out, nil
}

// worse returns the lower of two statuses.
func worse(a, b policy.Status) policy.Status {
	rank := func(s policy.Status) int {
		switch s {
		case policy.Invalid:
			return 2
		case policy.Indeterminate:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

func verifySigner(sd *SignedData, si *SignerInfo, src *contentSource, opts VerifyOptions, now func() time.Time) (policy.Verdict, error) {
	v := policy.Verdict{Status: policy.Valid}
	sc, err := signatureScheme(si.SignatureAlgorithm, si.Hash)
	if err != nil {
		return v, err
	}
	if weak(si.Hash) {
		v.Add(policy.Invalid, policy.CodeWeakAlgorithm, fmt.Sprintf("digest algorithm %v is too weak for signatures", si.Hash))
	}
	sigUsable := true
	if sc.hash != si.Hash {
		v.Add(policy.Invalid, policy.CodeSignatureMismatch,
			fmt.Sprintf("signature algorithm %s uses %v, the digest algorithm is %v", sc.name, sc.hash, si.Hash))
		sigUsable = false
	}

	certs := sd.Certificates
	if len(opts.ExtraCertificates) > 0 {
		certs = append(slices.Clip(certs), opts.ExtraCertificates...)
	}
	cert := findSigner(certs, si)
	if cert != nil {
		v.Subject = cert.Subject.String()
	}

	digest, problem := src.digestFor(si.Hash)
	if problem != "" {
		v.Add(policy.Invalid, policy.CodeDigestMismatch, problem)
	}

	// What the signature is over, hashed with the digest algorithm.
	var signed []byte
	if si.RawSignedAttrs != nil {
		if err := checkSignedAttributes(sd, si, cert, digest, &v); err != nil {
			return v, err
		}
		h := si.Hash.New()
		h.Write(si.RawSignedAttrs)
		signed = h.Sum(nil)
	} else {
		// RFC 5652 5.3: without signed attributes the content must be data.
		if !is(sd.ContentType, oidData) {
			v.Add(policy.Invalid, policy.CodeMalformed, "content other than id-data without signed attributes")
		}
		signed = digest
	}

	switch {
	case cert == nil:
		v.Add(policy.Indeterminate, policy.CodeSignerNotFound, "the signer's certificate is not in the message")
		return v, nil
	case !sigUsable || signed == nil:
		// Already INVALID; nothing meaningful to verify.
	default:
		code, msg := checkSignature(cert.PublicKey, sc, signed, si.Signature)
		if code == policy.CodeSignatureMismatch && si.RawSignedAttrs != nil {
			// Some producers sign their attributes unsorted while OpenSSL
			// verifies over the DER re-encoding, which sorts them; accept
			// the sorted form too.
			if alt := sortedSignedAttrs(si); alt != nil {
				h := si.Hash.New()
				h.Write(alt)
				if c, _ := checkSignature(cert.PublicKey, sc, h.Sum(nil), si.Signature); c == "" {
					code = ""
				}
			}
		}
		if code != "" {
			v.Add(policy.Invalid, code, msg)
		}
		if weak(sc.hash) && sc.hash != si.Hash {
			v.Add(policy.Invalid, policy.CodeWeakAlgorithm, fmt.Sprintf("signature algorithm %s is too weak", sc.name))
		}
	}

	if opts.TimestampVerifier != nil {
		checkTimestamps(si, opts.TimestampVerifier, &v)
	}
	// The chain is judged at a trusted time (DESIGN.md, decree 212/2012):
	// the caller's, else a verified time-stamp's, else now. The
	// signing-time attribute is only the signer's claim.
	at := opts.At
	if at.IsZero() {
		at = v.TimestampTime
	}
	if at.IsZero() {
		at = now()
	}
	if opts.Validator == nil {
		v.ValidatedAt = at
		v.Add(policy.Indeterminate, policy.CodeUntrustedRoot, "no trust anchors configured")
		return v, nil
	}
	var inter []*x509.Certificate
	for _, c := range certs {
		if c != cert {
			inter = append(inter, c)
		}
	}
	purpose := opts.Purpose
	if purpose == "" {
		purpose = policy.PurposeSigning
	}
	req := opts.Policy
	req.Leaf, req.Intermediates, req.Purpose, req.At = cert, inter, purpose, at
	cv := opts.Validator.Validate(req)
	v.Chain = cv.Chain
	v.Policy, v.Qualification = cv.Policy, cv.Qualification
	v.ValidatedAt = cv.ValidatedAt
	if v.ValidatedAt.IsZero() {
		v.ValidatedAt = at
	}
	v.Reasons = append(v.Reasons, cv.Reasons...)
	v.Status = worse(v.Status, cv.Status)
	return v, nil
}

// checkTimestamps verifies every signature-time-stamp unsigned attribute
// value (ETSI EN 319 122-1 5.3) over the signature value. The earliest
// time of a VALID token becomes the verdict's TimestampTime: that token
// proves the signature existed then. A token that is not VALID lowers the
// verdict with its reasons, each marked as the time-stamp's.
func checkTimestamps(si *SignerInfo, tv TimestampVerifier, v *policy.Verdict) {
	for _, a := range si.UnsignedAttrs {
		if !is(a.Type, OIDSignatureTimeStampToken) {
			continue
		}
		for _, tok := range a.Values {
			at, tvv, err := tv.VerifyTimestamp(tok, si.Signature)
			if err != nil {
				v.Add(policy.Invalid, policy.CodeMalformed, "signature time-stamp: "+err.Error())
				continue
			}
			if tvv.Status != policy.Valid {
				for _, r := range tvv.Reasons {
					v.Add(tvv.Status, r.Code, "signature time-stamp: "+r.Message)
				}
				if len(tvv.Reasons) == 0 {
					v.Add(tvv.Status, policy.CodeMalformed, "signature time-stamp is not valid")
				}
				continue
			}
			if v.TimestampTime.IsZero() || at.Before(v.TimestampTime) {
				v.TimestampTime = at
			}
		}
	}
}

// checkSignedAttributes checks content-type, message-digest and the
// signing-certificate attributes, and takes the signing time. RFC 5652 5.3
// allows each of content-type, message-digest and signing-time only once.
func checkSignedAttributes(sd *SignedData, si *SignerInfo, cert *x509.Certificate, digest []byte, v *policy.Verdict) error {
	single := func(o oidName, name string) (*Attribute, bool) {
		a, n := findAttr(si.SignedAttrs, o)
		if n > 1 || (a != nil && len(a.Values) != 1) {
			v.Add(policy.Invalid, policy.CodeMalformed, fmt.Sprintf("the %s attribute must have exactly one value", name))
			return nil, false
		}
		return a, a != nil
	}

	if a, ok := single(oidAttrContentType, "content-type"); ok {
		s := cryptobyte.String(a.Values[0])
		ct, ok := readOID(&s)
		if !ok || !s.Empty() {
			return malformedf("content-type attribute: not an OBJECT IDENTIFIER")
		}
		if !ct.Equal(sd.ContentType) {
			v.Add(policy.Invalid, policy.CodeMalformed,
				fmt.Sprintf("the content-type attribute %s differs from the content type %s", shortOID(ct), shortOID(sd.ContentType)))
		}
	} else if a == nil {
		v.Add(policy.Invalid, policy.CodeMalformed, "the signed attributes lack content-type")
	}

	if a, ok := single(oidAttrMessageDigest, "message-digest"); ok {
		md, ok := oneElement(a.Values[0], cbasn1.OCTET_STRING)
		if !ok {
			return malformedf("message-digest attribute: not an OCTET STRING")
		}
		if digest != nil && !bytes.Equal(md, digest) {
			v.Add(policy.Invalid, policy.CodeDigestMismatch, "the content's digest differs from the message-digest attribute")
		}
	} else if a == nil {
		v.Add(policy.Invalid, policy.CodeDigestMismatch, "the signed attributes lack message-digest")
	}

	if a, ok := single(oidAttrSigningTime, "signing-time"); ok {
		s := cryptobyte.String(a.Values[0])
		t, ok := readTime(&s)
		if !ok || !s.Empty() {
			return malformedf("signing-time attribute: not a UTCTime or GeneralizedTime")
		}
		v.SigningTime = t
	}

	if cert == nil {
		return nil
	}
	for _, ess := range []struct {
		o  oidName
		v2 bool
	}{{oidAttrSigningCertificateV2, true}, {oidAttrSigningCertificate, false}} {
		a, n := findAttr(si.SignedAttrs, ess.o)
		if a == nil {
			continue
		}
		if n > 1 || len(a.Values) != 1 {
			v.Add(policy.Invalid, policy.CodeMalformed, "a signing-certificate attribute must occur once with one value")
			continue
		}
		problem, err := checkSigningCertificate(a.Values[0], ess.v2, cert)
		if err != nil {
			return err
		}
		if problem != "" {
			v.Add(policy.Invalid, CodeSigningCertificateMismatch, problem)
		}
	}
	return nil
}

// sortedSignedAttrs returns the signed attributes re-encoded in DER order,
// or nil when they already are in it.
func sortedSignedAttrs(si *SignerInfo) []byte {
	body, ok := oneElement(si.RawSignedAttrs, cbasn1.SET)
	if !ok {
		return nil
	}
	var elems [][]byte
	for !body.Empty() {
		var el cryptobyte.String
		if !body.ReadAnyASN1Element(&el, nil) {
			return nil
		}
		elems = append(elems, el)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(setOf(elems)) })
	out, err := b.Bytes()
	if err != nil || bytes.Equal(out, si.RawSignedAttrs) {
		return nil
	}
	return out
}

// findSigner finds the certificate a SignerInfo identifies.
func findSigner(certs []*x509.Certificate, si *SignerInfo) *x509.Certificate {
	for _, c := range certs {
		if si.Issuer != nil {
			if bytes.Equal(c.RawIssuer, si.Issuer) && c.SerialNumber.Cmp(si.SerialNumber) == 0 {
				return c
			}
		} else if len(si.SubjectKeyID) > 0 && bytes.Equal(c.SubjectKeyId, si.SubjectKeyID) {
			return c
		}
	}
	return nil
}

type schemeKind int

const (
	rsaPKCS1 schemeKind = iota
	rsaPSS
	ecdsaSig
)

// scheme is a resolved signature algorithm.
type scheme struct {
	name    string
	kind    schemeKind
	hash    crypto.Hash
	saltLen int // PSS only
}

// signatureScheme resolves a signatureAlgorithm. Algorithms that carry no
// hash (rsaEncryption, id-ecPublicKey) use the digest algorithm.
func signatureScheme(a AlgorithmIdentifier, digest crypto.Hash) (scheme, error) {
	id := a.Algorithm
	switch {
	case is(id, oidRSAEncryption):
		return scheme{"rsaEncryption", rsaPKCS1, digest, 0}, nil
	case is(id, oidSHA256WithRSA):
		return scheme{"sha256WithRSAEncryption", rsaPKCS1, crypto.SHA256, 0}, nil
	case is(id, oidSHA384WithRSA):
		return scheme{"sha384WithRSAEncryption", rsaPKCS1, crypto.SHA384, 0}, nil
	case is(id, oidSHA512WithRSA):
		return scheme{"sha512WithRSAEncryption", rsaPKCS1, crypto.SHA512, 0}, nil
	case is(id, oidSHA224WithRSA):
		return scheme{"sha224WithRSAEncryption", rsaPKCS1, crypto.SHA224, 0}, nil
	case is(id, oidSHA1WithRSA):
		return scheme{"sha1WithRSAEncryption", rsaPKCS1, crypto.SHA1, 0}, nil
	case is(id, oidMD5WithRSA):
		return scheme{"md5WithRSAEncryption", rsaPKCS1, crypto.MD5, 0}, nil
	case is(id, oidRSASSAPSS):
		return pssScheme(a.Parameters)
	case is(id, oidECPublicKey):
		return scheme{"ecPublicKey", ecdsaSig, digest, 0}, nil
	case is(id, oidECDSAWithSHA256):
		return scheme{"ecdsa-with-SHA256", ecdsaSig, crypto.SHA256, 0}, nil
	case is(id, oidECDSAWithSHA384):
		return scheme{"ecdsa-with-SHA384", ecdsaSig, crypto.SHA384, 0}, nil
	case is(id, oidECDSAWithSHA512):
		return scheme{"ecdsa-with-SHA512", ecdsaSig, crypto.SHA512, 0}, nil
	case is(id, oidECDSAWithSHA224):
		return scheme{"ecdsa-with-SHA224", ecdsaSig, crypto.SHA224, 0}, nil
	case is(id, oidECDSAWithSHA1):
		return scheme{"ecdsa-with-SHA1", ecdsaSig, crypto.SHA1, 0}, nil
	}
	return scheme{}, malformedf("unknown signature algorithm %s", shortOID(id))
}

// pssScheme decodes RSASSA-PSS-params (RFC 4055 3.1). crypto/rsa uses the
// message hash for MGF1 too, so other MGF1 hashes are refused.
func pssScheme(params []byte) (scheme, error) {
	sc := scheme{name: "RSASSA-PSS", kind: rsaPSS, hash: crypto.SHA1, saltLen: 20}
	p, ok := oneElement(params, cbasn1.SEQUENCE)
	if !ok {
		return sc, malformedf("RSASSA-PSS without parameters")
	}
	var el cryptobyte.String
	var present bool
	if !p.ReadOptionalASN1(&el, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return sc, malformedf("RSASSA-PSS: bad hashAlgorithm")
	}
	if present {
		alg, err := readAlgorithm(&el)
		if err != nil || !el.Empty() {
			return sc, malformedf("RSASSA-PSS: bad hashAlgorithm")
		}
		if sc.hash = hashFromDigestOID(alg.Algorithm); sc.hash == 0 {
			return sc, malformedf("RSASSA-PSS: unknown hash algorithm %s", shortOID(alg.Algorithm))
		}
	}
	mgfHash := crypto.SHA1
	if !p.ReadOptionalASN1(&el, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return sc, malformedf("RSASSA-PSS: bad maskGenAlgorithm")
	}
	if present {
		mgf, err := readAlgorithm(&el)
		if err != nil || !el.Empty() || !is(mgf.Algorithm, oidMGF1) {
			return sc, malformedf("RSASSA-PSS: mask generation other than MGF1")
		}
		ps := cryptobyte.String(mgf.Parameters)
		halg, err := readAlgorithm(&ps)
		if err != nil || !ps.Empty() {
			return sc, malformedf("RSASSA-PSS: bad MGF1 parameters")
		}
		mgfHash = hashFromDigestOID(halg.Algorithm)
	}
	if mgfHash != sc.hash {
		return sc, malformedf("RSASSA-PSS: MGF1 with another hash than the message's is not supported")
	}
	salt := int64(20)
	if !p.ReadOptionalASN1Integer(&salt, cbasn1.Tag(2).Constructed().ContextSpecific(), int64(20)) || salt < 0 || salt > 1024 {
		return sc, malformedf("RSASSA-PSS: bad saltLength")
	}
	sc.saltLen = int(salt)
	trailer := int64(1)
	if !p.ReadOptionalASN1Integer(&trailer, cbasn1.Tag(3).Constructed().ContextSpecific(), int64(1)) || trailer != 1 || !p.Empty() {
		return sc, malformedf("RSASSA-PSS: bad trailerField")
	}
	return sc, nil
}

// checkSignature verifies sig over digest; it returns a reason code and
// message, or "" when the signature is good.
func checkSignature(pub crypto.PublicKey, sc scheme, digest, sig []byte) (policy.Code, string) {
	const bad = "the signature does not verify with the signer's certificate"
	switch sc.kind {
	case rsaPKCS1, rsaPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return policy.CodeSignatureMismatch, fmt.Sprintf("signature algorithm %s does not fit the certificate's %T key", sc.name, pub)
		}
		if k.N.BitLen() < minRSABits {
			return policy.CodeWeakAlgorithm, fmt.Sprintf("RSA key of %d bits is too small to verify", k.N.BitLen())
		}
		if k.N.BitLen() > policy.MaxRSAModulusBits {
			// Never verified: the cost grows with the square of the
			// modulus (docs/security.md "Work budget per verification").
			return policy.CodeWeakAlgorithm, fmt.Sprintf("RSA key of %d bits is too large to verify (at most %d)", k.N.BitLen(), policy.MaxRSAModulusBits)
		}
		var err error
		if sc.kind == rsaPSS {
			err = rsa.VerifyPSS(k, sc.hash, digest, sig, &rsa.PSSOptions{SaltLength: sc.saltLen, Hash: sc.hash})
		} else {
			err = rsa.VerifyPKCS1v15(k, sc.hash, digest, sig)
		}
		if err != nil {
			return policy.CodeSignatureMismatch, bad
		}
	case ecdsaSig:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return policy.CodeSignatureMismatch, fmt.Sprintf("signature algorithm %s does not fit the certificate's %T key", sc.name, pub)
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return policy.CodeSignatureMismatch, bad
		}
	}
	return "", ""
}
