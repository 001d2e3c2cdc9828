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

	"github.com/pecet-hsm/pecet/internal/cms"
)

// CodeContentMismatch: the content (or digest) the caller supplied with an
// attached signature is not the content embedded in it (docs/security.md,
// "Attached signatures and the content the caller supplies").
const CodeContentMismatch policy.Code = "CONTENT_MISMATCH"

// CodeUnsupportedAlgorithm: a signature algorithm, or parameters of one,
// that pecet cannot verify (an unknown OID, RSASSA-PSS with MGF1 over
// another hash than the message's). The verdict is INDETERMINATE: the
// signature may be sound, pecet cannot tell.
const CodeUnsupportedAlgorithm policy.Code = "UNSUPPORTED_ALGORITHM"

// CodeCertificateUnreadable: the signer's certificate is in the message
// but crypto/x509 refuses it (real CAs issued certificates with a BER
// length inside an extension). The signature is checked with its public
// key; its chain cannot be judged, so the verdict is at best
// INDETERMINATE.
const CodeCertificateUnreadable policy.Code = "CERTIFICATE_UNREADABLE"

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

func verify(der []byte, opts VerifyOptions) (Report, error) {
	sd, err := ParseWithLimits(der, opts.Limits)
	if err != nil {
		return Report{}, err
	}
	return VerifyParsed(sd, opts)
}

// VerifyParsed is VerifyReport of a SignedData already parsed (Parse,
// ParseWithLimits; opts.Limits are not applied again), for a caller that
// read it first, as a time-stamp token's TSTInfo is read before the token
// is judged: the bytes are parsed once. sd is not changed.
func VerifyParsed(sd *SignedData, opts VerifyOptions) (Report, error) {
	var err error
	if len(sd.SignerInfos) == 0 {
		return Report{}, malformedf("no signer infos (a certificates-only message is not a signature)")
	}
	givenHash := opts.DigestHash
	if opts.Digest != nil {
		if givenHash == 0 {
			givenHash = crypto.SHA256
		}
		if _, ok := digestOID(givenHash); !ok {
			return Report{}, fmt.Errorf("%w: %v", ErrUnsupportedHash, givenHash)
		}
		if len(opts.Digest) != givenHash.Size() {
			return Report{}, fmt.Errorf("%w: %d bytes for %v", ErrDigestLength, len(opts.Digest), givenHash)
		}
	}
	src := &contentSource{cache: map[crypto.Hash][]byte{}}
	rep := Report{}
	// mismatch is set when the caller supplied content or a digest with an
	// attached signature and it is not the embedded content: the signature
	// is still verified over what it embeds, and the verdict is INVALID.
	var mismatch string
	switch {
	case !sd.Detached:
		src.content, src.hasContent = sd.Content, true
		rep.Content = VerifiedContent{Source: ContentEmbedded, Embedded: sd.Content}
		switch {
		case opts.Content != nil:
			rep.Content.Compared = ContentGiven
			if !bytes.Equal(opts.Content, sd.Content) {
				mismatch = fmt.Sprintf("the content given (%d bytes) is not the content embedded in the signature (%d bytes)", len(opts.Content), len(sd.Content))
			}
		case opts.Digest != nil:
			rep.Content.Compared = DigestGiven
			if d, _ := src.digestFor(givenHash); !bytes.Equal(d, opts.Digest) {
				mismatch = fmt.Sprintf("the %v digest given is not the digest of the content embedded in the signature", givenHash)
			}
		}
	case opts.Content != nil:
		src.content, src.hasContent = opts.Content, true
		rep.Content.Source = ContentGiven
	case opts.Digest != nil:
		src.digest, src.digestHash = opts.Digest, givenHash
		rep.Content = VerifiedContent{Source: DigestGiven, Digest: opts.Digest, Hash: givenHash}
	default:
		return Report{}, ErrContentMissing
	}
	if src.hasContent {
		// The digest the report names is the first signer's.
		h := sd.SignerInfos[0].Hash
		rep.Content.Digest, _ = src.digestFor(h)
		rep.Content.Hash = h
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}

	verdicts := make([]policy.Verdict, len(sd.SignerInfos))
	for i := range sd.SignerInfos {
		if verdicts[i], err = verifySigner(sd, &sd.SignerInfos[i], src, opts, now); err != nil {
			return Report{}, within(fmt.Sprintf("signer info %d", i+1), err)
		}
	}
	out := verdicts[0]
	if len(verdicts) > 1 {
		// All signers must verify: the verdict is the worst, the signer
		// details are the first signer's, the reasons everyone's, each
		// saying whose.
		out.Reasons = nil
		for i, v := range verdicts {
			out.Status = worse(out.Status, v.Status)
			if i > 0 {
				for _, u := range v.Used {
					out.Use(u)
				}
			}
			for _, r := range v.Reasons {
				out.Reasons = append(out.Reasons, policy.Reason{Code: r.Code, Message: fmt.Sprintf("signer %d: %s", i+1, r.Message)})
			}
		}
	}
	if mismatch != "" {
		out.Add(policy.Invalid, CodeContentMismatch, mismatch)
	}
	rep.Verdict = out
	return rep, nil
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
	// A policy whose algorithm suite dates the digest (historical SHA-1)
	// judges it below, at the time a proof of existence gives.
	judge, _ := opts.Validator.(policy.AlgorithmJudge)
	suiteJudges := false
	if weak(si.Hash) && judge != nil {
		_, suiteJudges = judge.JudgeSignatureAlgorithm(opts.Policy.Policy, si.Hash, 0, nil, time.Time{})
	}
	if weak(si.Hash) && !suiteJudges {
		v.Add(policy.Invalid, policy.CodeWeakAlgorithm, fmt.Sprintf("digest algorithm %v is too weak for signatures", si.Hash))
	}
	sigUsable := true
	sc, prob := signatureScheme(si.SignatureAlgorithm, si.Hash)
	switch {
	case prob != nil:
		v.Add(prob.status, prob.code, prob.msg)
		sigUsable = false
	case sc.hash != si.Hash:
		// RFC 5652 5.4 hashes the signed attributes with the digest
		// algorithm; a signature algorithm with another hash cannot be
		// over them (ETSI EN 319 122-1 requires the two to agree).
		v.Add(policy.Invalid, policy.CodeSignatureMismatch,
			fmt.Sprintf("signature algorithm %s uses %v, the digest algorithm is %v", sc.name, sc.hash, si.Hash))
		sigUsable = false
	}

	certs := sd.Certificates
	if len(opts.ExtraCertificates) > 0 {
		certs = append(slices.Clip(certs), opts.ExtraCertificates...)
	}
	cert := findSigner(certs, si)
	var unreadable error
	if cert == nil {
		cert, unreadable = findUnparsedSigner(sd.UnparsedCertificates, si)
	}
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
		if !cms.Is(sd.ContentType, oidData) {
			v.Add(policy.Invalid, policy.CodeMalformed, "content other than id-data without signed attributes")
		}
		signed = digest
	}

	if cert != nil {
		// Named in validation reports even when no chain is found
		// (docs/api.md "Validation reports").
		v.Use(policy.UsedObject{Kind: policy.ObjectCertificate, Raw: cert.Raw, Name: UsedSigningCertificate})
	}
	switch {
	case cert == nil:
		v.Add(policy.Indeterminate, policy.CodeSignerNotFound, "the signer's certificate is not in the message")
		return v, nil
	case !sigUsable || signed == nil:
		// Already INVALID; nothing meaningful to verify.
	case cert.PublicKey == nil:
		// An unreadable certificate whose key does not parse either:
		// nothing to verify with; CodeCertificateUnreadable follows.
	default:
		// Charged to the call's work budget like every certificate and CRL
		// check, a time-stamp token's signature too (docs/security.md "Work
		// budget per verification").
		budget := policy.BudgetFrom(opts.Policy.Context)
		if err := budget.SignatureWith(cert.PublicKey); err != nil {
			v.Add(policy.Indeterminate, policy.CodePathBound, "the signature was not checked: "+err.Error())
			break
		}
		code, msg := checkSignature(cert.PublicKey, sc, signed, si.Signature)
		if code == policy.CodeSignatureMismatch && si.RawSignedAttrs != nil {
			// The rule (docs/security.md, "Signed attributes out of DER
			// order"): the signature verifies over the attributes as
			// encoded (above), or over their DER SET OF order, which is
			// what OpenSSL and Bouncy Castle compute whatever the order in
			// the message. Both forms hold the same attributes, the ones
			// checked above, so accepting either changes nothing about
			// what was signed.
			if alt := sortedSignedAttrs(si); alt != nil {
				if err := budget.SignatureWith(cert.PublicKey); err != nil {
					v.Add(policy.Indeterminate, policy.CodePathBound, "the signature was not checked over the attributes in DER order: "+err.Error())
					break
				}
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
		checkTimestamps(si, sd.Certificates, opts.TimestampVerifier, &v)
	}
	// The chain is judged at a trusted time (README.md "Certificate policy",
	// decree 212/2012):
	// the caller's, else a verified time-stamp's, else now. The
	// signing-time attribute is only the signer's claim.
	at := opts.At
	if at.IsZero() {
		at = v.TimestampTime
	}
	if at.IsZero() {
		at = now()
	}
	if suiteJudges {
		if jv, ok := judge.JudgeSignatureAlgorithm(opts.Policy.Policy, si.Hash, sc.x509Algorithm(), cert.PublicKey, at); ok {
			for _, r := range jv.Reasons {
				v.Add(jv.Status, r.Code, r.Message)
			}
		}
	}
	if unreadable != nil {
		v.ValidatedAt = at
		msg := "the signer's certificate cannot be read (" + unreadable.Error() + "): the signature was checked with its public key, its chain cannot be judged"
		if cert.PublicKey == nil {
			msg = "the signer's certificate cannot be read (" + unreadable.Error() + "), nor its public key: neither the signature nor the chain can be checked"
		}
		v.Add(policy.Indeterminate, CodeCertificateUnreadable, msg)
		return v, nil
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
	if purpose == policy.PurposeSigning {
		// A revocation of the signing certificate or a CA of its path is
		// judged against the signature's proof of existence: the caller's
		// time or a verified time-stamp's, else none (docs/security.md
		// "Revocation and proof of existence").
		req.Signature = &policy.SignatureTime{POE: !opts.At.IsZero() || !v.TimestampTime.IsZero(), Claimed: v.SigningTime}
	}
	cv := opts.Validator.Validate(req)
	v.Chain = cv.Chain
	v.Policy, v.Qualification = cv.Policy, cv.Qualification
	v.Overrides = cv.Overrides // per-call overrides of the policy (docs/security.md)
	v.ValidatedAt = cv.ValidatedAt
	if v.ValidatedAt.IsZero() {
		v.ValidatedAt = at
	}
	v.Reasons = append(v.Reasons, cv.Reasons...)
	v.Status = worse(v.Status, cv.Status)
	for _, u := range cv.Used {
		v.Use(u)
	}
	return v, nil
}

// UsedSigningCertificate is the Name of the signer's certificate among a
// verdict's used objects.
const UsedSigningCertificate = "signing certificate"

// checkTimestamps verifies every signature-time-stamp unsigned attribute
// value (ETSI EN 319 122-1 5.3) over the signature value. The earliest
// time of a VALID token becomes the verdict's TimestampTime: that token
// proves the signature existed then. A token that is not VALID lowers the
// verdict with its reasons, each marked as the time-stamp's. Other unsigned
// attributes (archive time-stamps, validation data) are not verified and
// do not change the verdict.
func checkTimestamps(si *SignerInfo, certs []*x509.Certificate, tv TimestampVerifier, v *policy.Verdict) {
	for _, a := range si.UnsignedAttrs {
		if !cms.Is(a.Type, OIDSignatureTimeStampToken) {
			continue
		}
		for _, tok := range a.Values {
			var at time.Time
			var tvv policy.Verdict
			var err error
			if tc, ok := tv.(TimestampVerifierWithCertificates); ok {
				at, tvv, err = tc.VerifyTimestampWithCertificates(tok, si.Signature, certs)
			} else {
				at, tvv, err = tv.VerifyTimestamp(tok, si.Signature)
			}
			if err != nil {
				v.Add(policy.Invalid, policy.CodeMalformed, "signature time-stamp: "+err.Error())
				continue
			}
			// The token, its TSA's chain and the revocation data they
			// rest on are validation objects whatever the outcome.
			v.Use(policy.UsedObject{Kind: policy.ObjectTimestamp, Raw: tok, Time: at})
			for _, c := range tvv.Chain {
				v.Use(policy.UsedObject{Kind: policy.ObjectCertificate, Raw: c.Raw})
			}
			for _, u := range tvv.Used {
				v.Use(u)
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
			// Names compare as RFC 5280 7.1 (and OpenSSL) compare them:
			// signers re-encode the issuer (docs/realworld.md).
			if c.SerialNumber.Cmp(si.SerialNumber) == 0 && policy.EqualNames(c.RawIssuer, si.Issuer) {
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

// x509Algorithm names the scheme as crypto/x509 does, for the policy's
// algorithm rules; 0 when it has no such name.
func (sc scheme) x509Algorithm() x509.SignatureAlgorithm {
	type k struct {
		kind schemeKind
		hash crypto.Hash
	}
	return map[k]x509.SignatureAlgorithm{
		{rsaPKCS1, crypto.MD5}: x509.MD5WithRSA, {rsaPKCS1, crypto.SHA1}: x509.SHA1WithRSA,
		{rsaPKCS1, crypto.SHA256}: x509.SHA256WithRSA, {rsaPKCS1, crypto.SHA384}: x509.SHA384WithRSA, {rsaPKCS1, crypto.SHA512}: x509.SHA512WithRSA,
		{rsaPSS, crypto.SHA256}: x509.SHA256WithRSAPSS, {rsaPSS, crypto.SHA384}: x509.SHA384WithRSAPSS, {rsaPSS, crypto.SHA512}: x509.SHA512WithRSAPSS,
		{ecdsaSig, crypto.SHA1}: x509.ECDSAWithSHA1, {ecdsaSig, crypto.SHA256}: x509.ECDSAWithSHA256,
		{ecdsaSig, crypto.SHA384}: x509.ECDSAWithSHA384, {ecdsaSig, crypto.SHA512}: x509.ECDSAWithSHA512,
	}[k{sc.kind, sc.hash}]
}

// problem is a finding about a signature algorithm for the verdict.
type problem struct {
	status policy.Status
	code   policy.Code
	msg    string
}

// unsupported is an algorithm pecet cannot verify: INDETERMINATE.
func unsupported(format string, args ...any) *problem {
	return &problem{policy.Indeterminate, CodeUnsupportedAlgorithm, fmt.Sprintf(format, args...)}
}

// inconsistent is an algorithm identifier no conforming signer writes:
// INVALID.
func inconsistent(format string, args ...any) *problem {
	return &problem{policy.Invalid, policy.CodeMalformed, fmt.Sprintf(format, args...)}
}

// signatureScheme resolves a signatureAlgorithm. Algorithms that carry no
// hash (rsaEncryption, id-ecPublicKey) use the digest algorithm. An
// algorithm pecet does not know, or RSASSA-PSS parameters it cannot use or
// that contradict themselves, are a problem for the verdict, not a parse
// error: the message is well-formed CMS, only its algorithm is not usable.
func signatureScheme(a AlgorithmIdentifier, digest crypto.Hash) (scheme, *problem) {
	id := a.Algorithm
	for _, k := range knownSchemes {
		if cms.Is(id, k.oid) {
			sc := k.scheme
			if sc.hash == 0 {
				sc.hash = digest
			}
			return sc, nil
		}
	}
	if cms.Is(id, oidRSASSAPSS) {
		return pssScheme(a.Parameters)
	}
	return scheme{}, unsupported("unknown signature algorithm %s", shortOID(id))
}

// knownSchemes are the signature algorithms without parameters to decode;
// hash 0 means the digest algorithm's.
var knownSchemes = [...]struct {
	oid    oidName
	scheme scheme
}{
	{oidRSAEncryption, scheme{"rsaEncryption", rsaPKCS1, 0, 0}},
	{oidSHA256WithRSA, scheme{"sha256WithRSAEncryption", rsaPKCS1, crypto.SHA256, 0}},
	{oidSHA384WithRSA, scheme{"sha384WithRSAEncryption", rsaPKCS1, crypto.SHA384, 0}},
	{oidSHA512WithRSA, scheme{"sha512WithRSAEncryption", rsaPKCS1, crypto.SHA512, 0}},
	{oidSHA224WithRSA, scheme{"sha224WithRSAEncryption", rsaPKCS1, crypto.SHA224, 0}},
	{oidSHA1WithRSA, scheme{"sha1WithRSAEncryption", rsaPKCS1, crypto.SHA1, 0}},
	{oidMD5WithRSA, scheme{"md5WithRSAEncryption", rsaPKCS1, crypto.MD5, 0}},
	{oidRSAWithSHA3_256, scheme{"id-rsassa-pkcs1-v1_5-with-sha3-256", rsaPKCS1, crypto.SHA3_256, 0}},
	{oidRSAWithSHA3_384, scheme{"id-rsassa-pkcs1-v1_5-with-sha3-384", rsaPKCS1, crypto.SHA3_384, 0}},
	{oidRSAWithSHA3_512, scheme{"id-rsassa-pkcs1-v1_5-with-sha3-512", rsaPKCS1, crypto.SHA3_512, 0}},
	{oidRSAWithSHA3_224, scheme{"id-rsassa-pkcs1-v1_5-with-sha3-224", rsaPKCS1, crypto.SHA3_224, 0}},
	{oidECPublicKey, scheme{"ecPublicKey", ecdsaSig, 0, 0}},
	{oidECDSAWithSHA256, scheme{"ecdsa-with-SHA256", ecdsaSig, crypto.SHA256, 0}},
	{oidECDSAWithSHA384, scheme{"ecdsa-with-SHA384", ecdsaSig, crypto.SHA384, 0}},
	{oidECDSAWithSHA512, scheme{"ecdsa-with-SHA512", ecdsaSig, crypto.SHA512, 0}},
	{oidECDSAWithSHA224, scheme{"ecdsa-with-SHA224", ecdsaSig, crypto.SHA224, 0}},
	{oidECDSAWithSHA1, scheme{"ecdsa-with-SHA1", ecdsaSig, crypto.SHA1, 0}},
	{oidECDSAWithSHA3_256, scheme{"id-ecdsa-with-sha3-256", ecdsaSig, crypto.SHA3_256, 0}},
	{oidECDSAWithSHA3_384, scheme{"id-ecdsa-with-sha3-384", ecdsaSig, crypto.SHA3_384, 0}},
	{oidECDSAWithSHA3_512, scheme{"id-ecdsa-with-sha3-512", ecdsaSig, crypto.SHA3_512, 0}},
	{oidECDSAWithSHA3_224, scheme{"id-ecdsa-with-sha3-224", ecdsaSig, crypto.SHA3_224, 0}},
}

// pssScheme decodes RSASSA-PSS-params (RFC 4055 3.1; the SHA-3 hashes of
// RFC 8702 3.1). crypto/rsa uses the message hash for MGF1 too, so MGF1
// over another hash is unsupported (INDETERMINATE); parameters that break
// RFC 4055 (absent, undecodable, a trailer field other than 1) are
// INVALID.
func pssScheme(params []byte) (scheme, *problem) {
	sc := scheme{name: "RSASSA-PSS", kind: rsaPSS, hash: crypto.SHA1, saltLen: 20}
	p, ok := oneElement(params, cbasn1.SEQUENCE)
	if !ok {
		return sc, inconsistent("RSASSA-PSS without parameters (RFC 4055 3.1 requires them)")
	}
	var el cryptobyte.String
	var present bool
	if !p.ReadOptionalASN1(&el, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return sc, inconsistent("RSASSA-PSS: bad hashAlgorithm")
	}
	if present {
		alg, err := readAlgorithm(&el)
		if err != nil || !el.Empty() {
			return sc, inconsistent("RSASSA-PSS: bad hashAlgorithm")
		}
		if sc.hash = hashFromDigestOID(alg.Algorithm); sc.hash == 0 {
			return sc, unsupported("RSASSA-PSS: unknown hash algorithm %s", shortOID(alg.Algorithm))
		}
	}
	mgfHash := crypto.SHA1
	if !p.ReadOptionalASN1(&el, &present, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return sc, inconsistent("RSASSA-PSS: bad maskGenAlgorithm")
	}
	if present {
		mgf, err := readAlgorithm(&el)
		if err != nil || !el.Empty() {
			return sc, inconsistent("RSASSA-PSS: bad maskGenAlgorithm")
		}
		if !cms.Is(mgf.Algorithm, oidMGF1) {
			return sc, unsupported("RSASSA-PSS: mask generation %s, only MGF1 is supported", shortOID(mgf.Algorithm))
		}
		ps := cryptobyte.String(mgf.Parameters)
		halg, err := readAlgorithm(&ps)
		if err != nil || !ps.Empty() {
			return sc, inconsistent("RSASSA-PSS: bad MGF1 parameters")
		}
		if mgfHash = hashFromDigestOID(halg.Algorithm); mgfHash == 0 {
			return sc, unsupported("RSASSA-PSS: MGF1 with unknown hash algorithm %s", shortOID(halg.Algorithm))
		}
	}
	if mgfHash != sc.hash {
		return sc, unsupported("RSASSA-PSS: MGF1 with %v while the message hash is %v is not supported", mgfHash, sc.hash)
	}
	salt := int64(20)
	if !p.ReadOptionalASN1Integer(&salt, cbasn1.Tag(2).Constructed().ContextSpecific(), int64(20)) || salt < 0 || salt > 1024 {
		return sc, inconsistent("RSASSA-PSS: bad saltLength")
	}
	sc.saltLen = int(salt)
	trailer := int64(1)
	if !p.ReadOptionalASN1Integer(&trailer, cbasn1.Tag(3).Constructed().ContextSpecific(), int64(1)) || !p.Empty() {
		return sc, inconsistent("RSASSA-PSS: bad trailerField")
	}
	if trailer != 1 {
		return sc, inconsistent("RSASSA-PSS: trailerField %d, RFC 4055 allows only 1 (0xBC)", trailer)
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
