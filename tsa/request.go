package tsa

import (
	"crypto"
	"crypto/rand"
	"encoding/asn1"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// MaxRequestBytes bounds a TimeStampReq. A request is a digest, a policy
// and a nonce, about 100 bytes; 64 KiB leaves room for extensions and
// refuses bodies meant to exhaust memory.
const MaxRequestBytes = 64 << 10

// maxNonceBytes bounds the nonce: OpenSSL sends 8 bytes, RFC 3161 says
// "large random number"; 64 bytes is ample.
const maxNonceBytes = 64

// Request is a parsed TimeStampReq (RFC 3161 2.4.1).
type Request struct {
	// Hash is the message imprint's hash; 0 when the identifier is unknown
	// (HashOID then says which).
	Hash    crypto.Hash
	HashOID asn1.ObjectIdentifier
	// Digest is the hashedMessage.
	Digest []byte
	// Policy is the reqPolicy; nil when absent.
	Policy asn1.ObjectIdentifier
	// Nonce is the nonce; nil when absent. Echoed as sent.
	Nonce *big.Int
	// CertReq asks for the TSA certificate in the token.
	CertReq bool
	// HasExtensions is set when the request carries extensions; pecet
	// supports none and rejects them (unacceptedExtension).
	HasExtensions bool
}

// hashOIDs are the message imprint hashes pecet knows by name. SHA-1 and
// MD5 are known so a request with them is badAlg with a clear text.
var hashOIDs = []struct {
	h   crypto.Hash
	oid cms.OID
}{
	{crypto.SHA256, cms.OIDSHA256},
	{crypto.SHA384, cms.OIDSHA384},
	{crypto.SHA512, cms.OIDSHA512},
	{crypto.SHA224, cms.OIDSHA224},
	{crypto.SHA1, cms.OIDSHA1},
	{crypto.MD5, cms.OIDMD5},
}

func hashFromOID(id asn1.ObjectIdentifier) crypto.Hash {
	for _, e := range hashOIDs {
		if cms.Is(id, e.oid) {
			return e.h
		}
	}
	return 0
}

// HashOID returns the digest algorithm identifier of h. The result is
// shared: callers only read it.
func HashOID(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	for _, e := range hashOIDs {
		if e.h == h {
			return e.oid.ASN1(), true
		}
	}
	return nil, false
}

// ParseRequest parses a DER TimeStampReq strictly: BER, indefinite
// lengths, non-minimal integers, an explicit certReq FALSE (DER omits a
// DEFAULT) and trailing bytes are badDataFormat. It does not judge the hash
// or the policy (the Authority's settings do); an unknown hash identifier
// is returned with Hash 0. Errors are *Rejection.
func ParseRequest(der []byte) (*Request, error) {
	if len(der) > MaxRequestBytes {
		return nil, reject(FailBadDataFormat, "request larger than %d bytes", MaxRequestBytes)
	}
	bad := func(what string) error { return reject(FailBadDataFormat, "malformed TimeStampReq: %s", what) }
	s := cryptobyte.String(der)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, bad("not a DER SEQUENCE")
	}
	if !s.Empty() {
		return nil, bad("trailing data after the request")
	}
	var version int64
	if !body.ReadASN1Integer(&version) {
		return nil, bad("version")
	}
	if version != 1 {
		// A well-formed request for a protocol version pecet does not
		// speak: a transaction not supported.
		return nil, reject(FailBadRequest, "unsupported TimeStampReq version %d", version)
	}
	r := &Request{}
	var mi cryptobyte.String
	if !body.ReadASN1(&mi, cbasn1.SEQUENCE) {
		return nil, bad("messageImprint")
	}
	var err error
	if r.HashOID, r.Digest, err = readImprint(mi); err != nil {
		return nil, err
	}
	r.Hash = hashFromOID(r.HashOID)
	if body.PeekASN1Tag(cbasn1.OBJECT_IDENTIFIER) {
		var p asn1.ObjectIdentifier
		if !body.ReadASN1ObjectIdentifier(&p) {
			return nil, bad("reqPolicy")
		}
		r.Policy = p
	}
	if body.PeekASN1Tag(cbasn1.INTEGER) {
		var n cryptobyte.String
		if !body.ReadASN1(&n, cbasn1.INTEGER) || len(n) > maxNonceBytes {
			return nil, bad("nonce")
		}
		r.Nonce = new(big.Int)
		nn := cryptobyte.String(append([]byte{2, byte(len(n))}, n...))
		if !nn.ReadASN1Integer(r.Nonce) { // checks the minimal encoding
			return nil, bad("nonce")
		}
	}
	if body.PeekASN1Tag(cbasn1.BOOLEAN) {
		if !body.ReadASN1Boolean(&r.CertReq) || !r.CertReq {
			return nil, bad("certReq (DER leaves out a FALSE default)")
		}
	}
	if body.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		var ext cryptobyte.String
		if !body.ReadASN1(&ext, cbasn1.Tag(0).Constructed().ContextSpecific()) || ext.Empty() {
			return nil, bad("extensions")
		}
		r.HasExtensions = true
	}
	if !body.Empty() {
		return nil, bad("unexpected field")
	}
	return r, nil
}

// readImprint reads a MessageImprint body: hashAlgorithm (parameters
// absent or NULL) and hashedMessage.
func readImprint(mi cryptobyte.String) (asn1.ObjectIdentifier, []byte, error) {
	var alg cryptobyte.String
	var id asn1.ObjectIdentifier
	var digest []byte
	if !mi.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&id) {
		return nil, nil, reject(FailBadDataFormat, "malformed TimeStampReq: hashAlgorithm")
	}
	if !alg.Empty() {
		var null cryptobyte.String
		if !alg.ReadASN1(&null, cbasn1.NULL) || len(null) != 0 || !alg.Empty() {
			return nil, nil, reject(FailBadAlg, "hash algorithm parameters must be absent or NULL")
		}
	}
	if !mi.ReadASN1Bytes(&digest, cbasn1.OCTET_STRING) || !mi.Empty() {
		return nil, nil, reject(FailBadDataFormat, "malformed TimeStampReq: hashedMessage")
	}
	return id, digest, nil
}

// NewRequest builds a request for a digest made with h. With nonce a
// random 64-bit nonce is added (as OpenSSL does).
func NewRequest(digest []byte, h crypto.Hash, nonce, certReq bool) (*Request, error) {
	id, ok := HashOID(h)
	if !ok || h.Size() != len(digest) {
		return nil, fmt.Errorf("tsa: digest of %d bytes does not fit %v", len(digest), h)
	}
	r := &Request{Hash: h, HashOID: id, Digest: digest, CertReq: certReq}
	if nonce {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		r.Nonce = new(big.Int).SetBytes(b)
	}
	return r, nil
}

// Marshal encodes the request as DER.
func (r *Request) Marshal() ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		addImprint(b, r.HashOID, r.Digest)
		if r.Policy != nil {
			b.AddASN1ObjectIdentifier(r.Policy)
		}
		if r.Nonce != nil {
			b.AddASN1BigInt(r.Nonce)
		}
		if r.CertReq {
			b.AddASN1Boolean(true)
		}
	})
	return b.Bytes()
}

func addImprint(b *cryptobyte.Builder, id asn1.ObjectIdentifier, digest []byte) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(id)
			b.AddASN1NULL()
		})
		b.AddASN1OctetString(digest)
	})
}
