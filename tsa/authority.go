package tsa

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/signer"
)

// KeySource returns the TSA key and its certificate chain, leaf first. The
// server fetches the primary version of the TIMESTAMP key from the HSM on
// every call (the keystore caches it), so a rotated key is used at once.
type KeySource func(ctx context.Context) (crypto.Signer, []*x509.Certificate, error)

// StaticKey is a KeySource with a fixed key and chain.
func StaticKey(key crypto.Signer, chain []*x509.Certificate) KeySource {
	return func(context.Context) (crypto.Signer, []*x509.Certificate, error) { return key, chain, nil }
}

// DefaultHashes are the message imprint hashes accepted by default.
var DefaultHashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

// Config of an Authority.
type Config struct {
	Key KeySource
	// Policy is the TSA policy of tokens whose request names none.
	Policy asn1.ObjectIdentifier
	// AcceptedPolicies may be requested besides Policy; the token then
	// carries the requested one.
	AcceptedPolicies []asn1.ObjectIdentifier
	// Accuracy goes into every token; zero leaves it out.
	Accuracy time.Duration
	// Hashes are the accepted message imprint hashes (nil: DefaultHashes).
	// Only SHA-256, SHA-384 and SHA-512 may be listed.
	Hashes []crypto.Hash
	// IncludeTSAName writes the TSA certificate's subject as the tsa field.
	IncludeTSAName bool
	// SignatureHash signs the tokens; zero means SHA-256.
	SignatureHash crypto.Hash
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Clock, when set, must vouch for the time or the answer is
	// timeNotAvailable.
	Clock *ClockGuard
	// Rand feeds the serial numbers; nil means crypto/rand.
	Rand io.Reader
	// RSACheckEvery samples the verification of the token's RSA
	// signatures: one in RSACheckEvery (0 or 1: every one, the default).
	// Only for a token that verifies its own RSA-CRT results
	// (signer.Options.RSACheck).
	RSACheckEvery int
}

// Authority issues time-stamp tokens. It is safe for concurrent use.
type Authority struct {
	c Config

	mu      sync.Mutex
	last    time.Time // genTime of the previous token: never go below it
	serials *serials
	// ecdsaCheck samples the self-check of ECDSA token signatures, as
	// pecetd's Sign does: verifying each one was 43 % of the handler's CPU
	// per P-256 token (docs/performance.md). RSA is verified every time.
	ecdsaCheck *signer.Sampler
	rsaCheck   *signer.Sampler
}

// ecdsaCheckEvery is the ECDSA self-check sampling rate.
const ecdsaCheckEvery = 64

// Result says what an answer was, for the caller's log, metrics and API.
type Result struct {
	Status PKIStatus
	Fail   FailureInfo
	// Text is the statusString sent to the client.
	Text string
	// Info is the issued token's content; nil on rejection.
	Info *TSTInfo
	// Token is the issued TimeStampToken (DER ContentInfo), the same bytes
	// as in the response, so a caller need not parse the response it got;
	// nil on rejection.
	Token []byte
	// Cause is the internal error behind a systemFailure, for the log only.
	Cause error
}

// New checks the settings and builds an Authority. It does not touch the
// key: Check does, at start-up.
func New(c Config) (*Authority, error) {
	if c.Key == nil {
		return nil, errors.New("tsa: no key source")
	}
	if len(c.Policy) < 2 {
		return nil, errors.New("tsa: a TSA policy OID is required")
	}
	if c.Hashes == nil {
		c.Hashes = DefaultHashes
	}
	for _, h := range c.Hashes {
		if !slices.Contains(DefaultHashes, h) {
			return nil, fmt.Errorf("tsa: hash %v may not be accepted (SHA-256, SHA-384, SHA-512 only)", h)
		}
	}
	if c.SignatureHash == 0 {
		c.SignatureHash = crypto.SHA256
	}
	if c.Accuracy < 0 {
		return nil, errors.New("tsa: negative accuracy")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	s, err := newSerials(c.Rand)
	if err != nil {
		return nil, err
	}
	a := &Authority{c: c, serials: s, ecdsaCheck: &signer.Sampler{Every: ecdsaCheckEvery}}
	if c.RSACheckEvery > 1 {
		a.rsaCheck = &signer.Sampler{Every: uint64(c.RSACheckEvery)}
	}
	return a, nil
}

// Check fetches the key and checks its certificate as CheckCertificate
// does: pecetd refuses to start when it fails.
func (a *Authority) Check(ctx context.Context) error {
	key, chain, err := a.c.Key(ctx)
	if err != nil {
		return fmt.Errorf("tsa: key: %w", err)
	}
	if len(chain) == 0 {
		return fmt.Errorf("%w: the TSA key has no certificate", ErrCertificateMismatch)
	}
	return CheckCertificate(chain[0], key.Public())
}

// KeySource returns the Authority's key source (for a verifier that
// should know this TSA's own certificates).
func (a *Authority) KeySource() KeySource { return a.c.Key }

// Ready reports why the Authority cannot issue now (the clock), nil when
// it can.
func (a *Authority) Ready() error {
	if a.c.Clock != nil {
		return a.c.Clock.Err()
	}
	return nil
}

// oidExtKeyUsage and oidKPTimeStamping (RFC 5280 4.2.1.12).
var (
	oidExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKPTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
)

// CheckCertificate checks a TSA certificate against the token key: the
// public keys are equal, and the certificate has exactly one extended key
// usage, id-kp-timeStamping, in an extension marked critical (RFC 3161 2.3).
func CheckCertificate(cert *x509.Certificate, pub crypto.PublicKey) error {
	k, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if cert == nil || !ok || !k.Equal(cert.PublicKey) {
		return ErrCertificateMismatch
	}
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidExtKeyUsage) {
			continue
		}
		var ekus []asn1.ObjectIdentifier
		rest, err := asn1.Unmarshal(e.Value, &ekus)
		switch {
		case err != nil || len(rest) > 0:
			return fmt.Errorf("%w: the extension does not decode", ErrExtKeyUsage)
		case !e.Critical:
			return fmt.Errorf("%w: the extension is not critical", ErrExtKeyUsage)
		case len(ekus) != 1 || !ekus[0].Equal(oidKPTimeStamping):
			return fmt.Errorf("%w: it lists %d usages %v", ErrExtKeyUsage, len(ekus), ekus)
		}
		return nil
	}
	return fmt.Errorf("%w: the certificate has no extended key usage", ErrExtKeyUsage)
}

// Respond answers a DER TimeStampReq with a DER TimeStampResp; it never
// fails, a problem is a rejection in the response.
func (a *Authority) Respond(ctx context.Context, der []byte) ([]byte, Result) {
	req, err := ParseRequest(der)
	if err != nil {
		var r *Rejection
		errors.As(err, &r)
		return RejectionResponse(r), Result{Status: StatusRejection, Fail: r.Info, Text: r.Text}
	}
	return a.Stamp(ctx, req)
}

// Stamp answers a parsed request with a DER TimeStampResp.
func (a *Authority) Stamp(ctx context.Context, req *Request) ([]byte, Result) {
	token, info, err := a.token(ctx, req)
	if err != nil {
		var r *Rejection
		if !errors.As(err, &r) {
			r = reject(FailSystemFailure, "the TSA cannot issue a token now")
		}
		res := Result{Status: StatusRejection, Fail: r.Info, Text: r.Text}
		if r.Info == FailSystemFailure {
			res.Cause = err
		}
		return RejectionResponse(r), res
	}
	return encodeResponse(StatusGranted, FailNone, "", token), Result{Status: StatusGranted, Fail: FailNone, Info: info, Token: token}
}

// Token issues a token over a digest made with h, certificates included,
// for a CAdES-T signature time-stamp inside the process. A refusal is a
// *Rejection (errors.Is ErrRejected).
func (a *Authority) Token(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, *TSTInfo, error) {
	id, ok := HashOID(h)
	if !ok {
		return nil, nil, reject(FailBadAlg, "unknown hash algorithm")
	}
	return a.token(ctx, &Request{Hash: h, HashOID: id, Digest: digest, CertReq: true})
}

func (a *Authority) token(ctx context.Context, req *Request) ([]byte, *TSTInfo, error) {
	if req.HasExtensions {
		return nil, nil, reject(FailUnacceptedExt, "request extensions are not supported")
	}
	switch {
	case req.Hash == 0:
		return nil, nil, reject(FailBadAlg, "unknown hash algorithm %s", shortOID(req.HashOID))
	case !slices.Contains(a.c.Hashes, req.Hash):
		return nil, nil, reject(FailBadAlg, "hash algorithm %v is not accepted", req.Hash)
	case len(req.Digest) != req.Hash.Size():
		return nil, nil, reject(FailBadDataFormat, "message imprint of %d bytes does not fit %v (%d bytes)", len(req.Digest), req.Hash, req.Hash.Size())
	}
	policy := a.c.Policy
	if req.Policy != nil {
		if !req.Policy.Equal(a.c.Policy) && !slices.ContainsFunc(a.c.AcceptedPolicies, req.Policy.Equal) {
			return nil, nil, reject(FailUnacceptedPolicy, "policy %s is not accepted", shortOID(req.Policy))
		}
		policy = req.Policy
	}
	if err := a.Ready(); err != nil {
		return nil, nil, reject(FailTimeNotAvailable, "the TSA's time source is not available")
	}
	key, chain, err := a.c.Key(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tsa: key: %w", err)
	}
	if len(chain) == 0 {
		return nil, nil, fmt.Errorf("%w: the TSA key has no certificate", ErrCertificateMismatch)
	}
	if err := CheckCertificate(chain[0], key.Public()); err != nil {
		return nil, nil, err
	}

	info := &TSTInfo{
		Policy: policy, Hash: req.Hash, HashOID: req.HashOID, Digest: req.Digest,
		Accuracy: a.c.Accuracy, Nonce: req.Nonce,
	}
	if a.c.IncludeTSAName {
		info.TSAName = directoryName(chain[0].RawSubject)
	}
	a.mu.Lock()
	info.GenTime = a.c.Now().UTC().Truncate(time.Millisecond)
	if info.GenTime.Before(a.last) {
		// The clock stepped back: repeat the last time rather than issue a
		// token that claims to be older than its predecessor.
		info.GenTime = a.last
	}
	a.last = info.GenTime
	info.Serial, err = a.serials.next()
	a.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	content, err := info.marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("tsa: encoding TSTInfo: %w", err)
	}
	token, err := signer.Sign(content, key, chain, signer.Options{
		Hash:             a.c.SignatureHash,
		Attached:         true,
		SigningTime:      info.GenTime,
		ContentType:      OIDContentTypeTSTInfo,
		OmitCertificates: !req.CertReq,
		ECDSACheck:       a.ecdsaCheck,
		RSACheck:         a.rsaCheck,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("tsa: signing the token: %w", err)
	}
	return token, info, nil
}

// directoryName is the DER of GeneralName directoryName [4] EXPLICIT Name.
func directoryName(rawName []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.Tag(4).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(rawName) })
	out, _ := b.Bytes()
	return out
}

// shortOID renders an identifier for a status text, cut short so a hostile
// one is never echoed whole.
func shortOID(id asn1.ObjectIdentifier) string {
	s := id.String()
	if len(s) > 48 {
		s = s[:48] + "…"
	}
	return s
}
