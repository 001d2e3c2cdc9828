package envelope

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// Message is a parsed CMS EnvelopedData (RFC 5652 6.1) or AuthEnvelopedData
// (RFC 5083). Byte slices may share memory with the input of Parse.
type Message struct {
	// Authenticated is set for AuthEnvelopedData.
	Authenticated bool
	Version       int
	// Recipients are the key-transport RecipientInfos in message order.
	// Other kinds (key agreement, KEK, password, other) are counted against
	// the limit and skipped: pecet cannot hold such keys.
	Recipients []Recipient
	// ContentType is the encryptedContentInfo's content type (id-data).
	ContentType asn1.ObjectIdentifier
	Cipher      Cipher
	// IV is the CBC initialisation vector or the GCM nonce.
	IV []byte
	// TagLen is the GCM ICV length (AuthEnvelopedData only).
	TagLen int
	// EncryptedContent is the ciphertext (without the GCM tag).
	EncryptedContent []byte
	// AuthAttrs is the DER of the authenticated attributes with the SET OF
	// tag (the GCM additional data, RFC 5083 2.2); nil when absent.
	AuthAttrs []byte
	// MAC is the GCM tag (AuthEnvelopedData only).
	MAC []byte
}

// Recipient is one KeyTransRecipientInfo (RFC 5652 6.2.1).
type Recipient struct {
	ID RecipientID
	// KeyTransport is empty when the algorithm is not one this package
	// knows; such a recipient is never decrypted.
	KeyTransport KeyTransport
	// Label is the OAEP label (pSpecified); empty in CMS practice.
	Label        []byte
	EncryptedKey []byte
}

// RecipientID names a recipient's certificate: issuer and serial number,
// or subject key identifier.
type RecipientID struct {
	Issuer       []byte // DER Name; nil with a subject key identifier
	SerialNumber *big.Int
	SubjectKeyID []byte
}

// Matches reports whether cert is the certificate the identifier names.
func (r RecipientID) Matches(cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	if r.SubjectKeyID != nil {
		return len(cert.SubjectKeyId) > 0 && bytes.Equal(cert.SubjectKeyId, r.SubjectKeyID)
	}
	return r.SerialNumber != nil && cert.SerialNumber != nil &&
		bytes.Equal(cert.RawIssuer, r.Issuer) && cert.SerialNumber.Cmp(r.SerialNumber) == 0
}

// Parse reads a ContentInfo holding an EnvelopedData or AuthEnvelopedData,
// DER or BER (OpenSSL streams BER), within lim (zero fields: defaults). The
// BER is normalised by cms.NormaliseBER, the one bounded normaliser in
// pecet.
func Parse(der []byte, lim Limits) (*Message, error) {
	lim = lim.WithDefaults()
	if len(der) > lim.MaxBytes {
		return nil, tooLargef("input of %d bytes exceeds the limit of %d", len(der), lim.MaxBytes)
	}
	if len(der) == 0 {
		return nil, malformedf("empty input")
	}
	in, err := cms.NormaliseBER(der, lim.MaxDepth)
	if err != nil {
		if errors.Is(err, cms.ErrBERTooLarge) {
			return nil, tooLargef("%s", berMessage(err))
		}
		return nil, malformedf("%s", berMessage(err))
	}
	s := cryptobyte.String(in)
	var ci, explicit, body cryptobyte.String
	var ct asn1.ObjectIdentifier
	if !s.ReadASN1(&ci, cbasn1.SEQUENCE) || !s.Empty() || !ci.ReadASN1ObjectIdentifier(&ct) {
		return nil, malformedf("not a ContentInfo")
	}
	m := &Message{}
	switch {
	case ct.Equal(oidEnvelopedData()):
	case ct.Equal(oidAuthEnvelopedData()):
		m.Authenticated = true
	default:
		return nil, malformedf("content type %s is neither enveloped-data nor authEnveloped-data", shortOID(ct))
	}
	if !ci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !ci.Empty() ||
		!explicit.ReadASN1(&body, cbasn1.SEQUENCE) || !explicit.Empty() {
		return nil, malformedf("ContentInfo: bad content")
	}
	if err := m.parseBody(body, lim); err != nil {
		return nil, err
	}
	return m, nil
}

// berMessage is where and what of a normaliser error, without its
// sentinel's text, for envelope's own ErrMalformed or ErrTooLarge.
func berMessage(err error) string {
	var be *cms.BERError
	if errors.As(err, &be) {
		return "BER: " + be.Msg
	}
	return err.Error()
}

func (m *Message) parseBody(s cryptobyte.String, lim Limits) error {
	if !s.ReadASN1Integer(&m.Version) || m.Version < 0 || m.Version > 4 {
		return malformedf("bad version")
	}
	// originatorInfo [0] IMPLICIT: certificates and CRLs of the
	// originator; not needed to decrypt, skipped.
	if !s.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return malformedf("bad originatorInfo")
	}
	var ris cryptobyte.String
	if !s.ReadASN1(&ris, cbasn1.SET) {
		return malformedf("bad recipientInfos")
	}
	var err error
	if m.Recipients, err = parseRecipientInfos(ris, lim); err != nil {
		return err
	}
	var eci cryptobyte.String
	if !s.ReadASN1(&eci, cbasn1.SEQUENCE) || !eci.ReadASN1ObjectIdentifier(&m.ContentType) {
		return malformedf("bad encryptedContentInfo")
	}
	var alg cryptobyte.String
	if !eci.ReadASN1(&alg, cbasn1.SEQUENCE) {
		return malformedf("bad contentEncryptionAlgorithm")
	}
	if m.Cipher, m.IV, m.TagLen, err = parseContentAlg(alg, m.Authenticated); err != nil {
		return err
	}
	// encryptedContent [0] IMPLICIT OCTET STRING: primitive, or (BER as
	// OpenSSL streams it) constructed from OCTET STRING chunks, which the
	// normaliser has made primitive but not joined.
	switch {
	case eci.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		var ec cryptobyte.String
		if !eci.ReadASN1(&ec, cbasn1.Tag(0).ContextSpecific()) {
			return malformedf("bad encryptedContent")
		}
		m.EncryptedContent = ec
	case eci.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()):
		var ec cryptobyte.String
		if !eci.ReadASN1(&ec, cbasn1.Tag(0).Constructed().ContextSpecific()) {
			return malformedf("bad encryptedContent")
		}
		// One copy, no larger than the input: join the chunks.
		joined := make([]byte, 0, len(ec))
		for !ec.Empty() {
			var chunk cryptobyte.String
			if !ec.ReadASN1(&chunk, cbasn1.OCTET_STRING) {
				return malformedf("encryptedContent chunk is not an OCTET STRING")
			}
			joined = append(joined, chunk...)
		}
		m.EncryptedContent = joined
	default:
		return malformedf("no encryptedContent (detached content is not supported)")
	}
	if !eci.Empty() {
		return malformedf("trailing data in encryptedContentInfo")
	}
	if m.Authenticated {
		if s.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
			var raw cryptobyte.String
			if !s.ReadASN1Element(&raw, cbasn1.Tag(1).Constructed().ContextSpecific()) {
				return malformedf("bad authAttrs")
			}
			if err := countAttrs(raw, lim); err != nil {
				return err
			}
			// The AAD is the DER of the attributes with an explicit SET OF
			// tag, not the [1] IMPLICIT one (RFC 5083 2.2).
			aad := append([]byte{0x31}, raw[1:]...)
			m.AuthAttrs = aad
		}
		if !s.ReadASN1Bytes(&m.MAC, cbasn1.OCTET_STRING) || len(m.MAC) != m.TagLen {
			return malformedf("bad mac")
		}
		if !s.SkipOptionalASN1(cbasn1.Tag(2).Constructed().ContextSpecific()) {
			return malformedf("bad unauthAttrs")
		}
	} else if !s.SkipOptionalASN1(cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return malformedf("bad unprotectedAttrs")
	}
	if !s.Empty() {
		return malformedf("trailing data")
	}
	return nil
}

// parseRecipientInfos reads the contents of the RecipientInfos SET: the
// key-transport ones are returned in order, the others counted against
// the limit and skipped. Shared by Parse and the streaming DecryptReader.
func parseRecipientInfos(ris cryptobyte.String, lim Limits) ([]Recipient, error) {
	var out []Recipient
	n := 0
	for !ris.Empty() {
		if n++; n > lim.MaxRecipients {
			return nil, tooLargef("more than %d recipientInfos", lim.MaxRecipients)
		}
		var ri cryptobyte.String
		var tag cbasn1.Tag
		if !ris.ReadAnyASN1(&ri, &tag) {
			return nil, malformedf("recipientInfo %d: bad encoding", n)
		}
		if tag != cbasn1.SEQUENCE {
			continue // kari [1], kekri [2], pwri [3], ori [4]
		}
		r, err := parseKTRI(ri)
		if err != nil {
			return nil, malformedf("recipientInfo %d: %s", n, err)
		}
		out = append(out, r)
	}
	if n == 0 {
		return nil, malformedf("no recipientInfos")
	}
	return out, nil
}

// parseContentAlg reads the contents of a contentEncryptionAlgorithm
// AlgorithmIdentifier (after the SEQUENCE tag): the cipher, its IV or GCM
// nonce and the GCM tag length. authenticated says the message is
// AuthEnvelopedData, where only GCM belongs.
func parseContentAlg(alg cryptobyte.String, authenticated bool) (c Cipher, iv []byte, tagLen int, err error) {
	var algID asn1.ObjectIdentifier
	var params cryptobyte.String
	if !alg.ReadASN1ObjectIdentifier(&algID) {
		return "", nil, 0, malformedf("bad contentEncryptionAlgorithm")
	}
	c, ok := cipherFromOID(algID)
	if !ok {
		return "", nil, 0, unsupportedf("content encryption algorithm %s (AES-CBC and AES-GCM are read)", shortOID(algID))
	}
	if c.gcm() != authenticated {
		return "", nil, 0, malformedf("%s in the wrong content type (GCM belongs in AuthEnvelopedData)", c)
	}
	if c.gcm() {
		// GCMParameters ::= SEQUENCE { aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12 }
		tagLen = 12
		if !alg.ReadASN1(&params, cbasn1.SEQUENCE) || !params.ReadASN1Bytes(&iv, cbasn1.OCTET_STRING) {
			return "", nil, 0, malformedf("bad GCMParameters")
		}
		if !params.Empty() && (!params.ReadASN1Integer(&tagLen) || !params.Empty()) {
			return "", nil, 0, malformedf("bad GCM ICV length")
		}
		if len(iv) != 12 || tagLen < 12 || tagLen > 16 {
			return "", nil, 0, malformedf("GCM nonce of %d bytes or tag of %d bytes (12 and 12-16 expected)", len(iv), tagLen)
		}
	} else if !alg.ReadASN1Bytes(&iv, cbasn1.OCTET_STRING) || len(iv) != 16 {
		return "", nil, 0, malformedf("bad CBC IV")
	}
	if !alg.Empty() {
		return "", nil, 0, malformedf("trailing data in contentEncryptionAlgorithm")
	}
	return c, iv, tagLen, nil
}

func countAttrs(raw cryptobyte.String, lim Limits) error {
	var set cryptobyte.String
	if !raw.ReadASN1(&set, cbasn1.Tag(1).Constructed().ContextSpecific()) {
		return malformedf("bad attributes")
	}
	n := 0
	for !set.Empty() {
		if n++; n > lim.MaxAttributes {
			return tooLargef("more than %d attributes", lim.MaxAttributes)
		}
		if !set.SkipASN1(cbasn1.SEQUENCE) {
			return malformedf("bad attribute")
		}
	}
	return nil
}

// ktriError is a plain finding inside one RecipientInfo.
type ktriError string

func (e ktriError) Error() string { return string(e) }

func parseKTRI(s cryptobyte.String) (Recipient, error) {
	var r Recipient
	var version int
	if !s.ReadASN1Integer(&version) || (version != 0 && version != 2) {
		return r, ktriError("bad version")
	}
	switch {
	case s.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias cryptobyte.String
		var issuer cryptobyte.String
		r.ID.SerialNumber = new(big.Int)
		if !s.ReadASN1(&ias, cbasn1.SEQUENCE) || !ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Integer(r.ID.SerialNumber) || !ias.Empty() {
			return r, ktriError("bad issuerAndSerialNumber")
		}
		r.ID.Issuer = issuer
	case s.PeekASN1Tag(cbasn1.Tag(0).ContextSpecific()):
		var ski cryptobyte.String
		if !s.ReadASN1(&ski, cbasn1.Tag(0).ContextSpecific()) || len(ski) == 0 {
			return r, ktriError("bad subjectKeyIdentifier")
		}
		r.ID.SubjectKeyID = ski
	default:
		return r, ktriError("bad recipient identifier")
	}
	var alg cryptobyte.String
	var algID asn1.ObjectIdentifier
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&algID) {
		return r, ktriError("bad keyEncryptionAlgorithm")
	}
	switch {
	case algID.Equal(oidRSAEncryption()):
		r.KeyTransport = RSAPKCS1
		if !alg.Empty() && (!alg.SkipASN1(cbasn1.NULL) || !alg.Empty()) {
			return r, ktriError("bad rsaEncryption parameters")
		}
	case algID.Equal(oidRSAESOAEP()):
		kt, label, err := parseOAEPParams(alg)
		if err != nil {
			return r, err
		}
		r.KeyTransport, r.Label = kt, label
	default:
		// Unknown: kept, never decrypted.
	}
	if !s.ReadASN1Bytes(&r.EncryptedKey, cbasn1.OCTET_STRING) || !s.Empty() {
		return r, ktriError("bad encryptedKey")
	}
	return r, nil
}

// parseOAEPParams reads RSAES-OAEP-params (RFC 4055 4.1). Only the hash
// pairs pecet offers are known: SHA-1/MGF1-SHA-1 and SHA-256/MGF1-SHA-256;
// others leave the key transport empty (not decryptable, not an error).
func parseOAEPParams(alg cryptobyte.String) (KeyTransport, []byte, error) {
	hash, mgf := crypto.SHA1, crypto.SHA1
	var label []byte
	if !alg.Empty() {
		var p cryptobyte.String
		if !alg.ReadASN1(&p, cbasn1.SEQUENCE) || !alg.Empty() {
			return "", nil, ktriError("bad RSAES-OAEP-params")
		}
		if p.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
			var e cryptobyte.String
			if !p.ReadASN1(&e, cbasn1.Tag(0).Constructed().ContextSpecific()) {
				return "", nil, ktriError("bad OAEP hashFunc")
			}
			h, ok := readHashAlg(&e)
			if !ok || !e.Empty() {
				return "", nil, ktriError("bad OAEP hashFunc")
			}
			hash = h
		}
		if p.PeekASN1Tag(cbasn1.Tag(1).Constructed().ContextSpecific()) {
			var e, a cryptobyte.String
			var id asn1.ObjectIdentifier
			if !p.ReadASN1(&e, cbasn1.Tag(1).Constructed().ContextSpecific()) || !e.ReadASN1(&a, cbasn1.SEQUENCE) ||
				!e.Empty() || !a.ReadASN1ObjectIdentifier(&id) || !id.Equal(oidMGF1()) {
				return "", nil, ktriError("bad OAEP maskGenFunc")
			}
			h, ok := readHashAlg(&a)
			if !ok || !a.Empty() {
				return "", nil, ktriError("bad OAEP MGF1 hash")
			}
			mgf = h
		}
		if p.PeekASN1Tag(cbasn1.Tag(2).Constructed().ContextSpecific()) {
			var e, a cryptobyte.String
			var id asn1.ObjectIdentifier
			if !p.ReadASN1(&e, cbasn1.Tag(2).Constructed().ContextSpecific()) || !e.ReadASN1(&a, cbasn1.SEQUENCE) ||
				!e.Empty() || !a.ReadASN1ObjectIdentifier(&id) || !id.Equal(oidPSpecified()) ||
				!a.ReadASN1Bytes(&label, cbasn1.OCTET_STRING) || !a.Empty() {
				return "", nil, ktriError("bad OAEP pSourceFunc")
			}
		}
		if !p.Empty() {
			return "", nil, ktriError("trailing data in RSAES-OAEP-params")
		}
	}
	switch {
	case hash == crypto.SHA1 && mgf == crypto.SHA1:
		return RSAOAEPSHA1, label, nil
	case hash == crypto.SHA256 && mgf == crypto.SHA256:
		return RSAOAEP, label, nil
	}
	return "", label, nil
}

// readHashAlg reads a digest AlgorithmIdentifier with absent or NULL
// parameters (RFC 4055 allows both).
func readHashAlg(s *cryptobyte.String) (crypto.Hash, bool) {
	var a cryptobyte.String
	var id asn1.ObjectIdentifier
	if !s.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&id) {
		return 0, false
	}
	if !a.Empty() && (!a.SkipASN1(cbasn1.NULL) || !a.Empty()) {
		return 0, false
	}
	switch {
	case id.Equal(oidSHA1()):
		return crypto.SHA1, true
	case id.Equal(oidSHA256()):
		return crypto.SHA256, true
	case id.Equal(oidSHA384()):
		return crypto.SHA384, true
	case id.Equal(oidSHA512()):
		return crypto.SHA512, true
	}
	return 0, true // known shape, unknown hash: not decryptable
}

func shortOID(id asn1.ObjectIdentifier) string {
	s := id.String()
	if len(s) > 48 {
		s = s[:48] + "…"
	}
	return s
}

func unsupportedf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, a...))
}
