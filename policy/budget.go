package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Errors of the work budget (docs/security.md "Work budget per
// verification").
var (
	// ErrWorkBudget: one call needed more verification work than its
	// budget allows; the call stops and is refused (ResourceExhausted).
	ErrWorkBudget = errors.New("policy: verification work budget exhausted")
	// ErrKeyTooLarge: an RSA key above MaxRSAModulusBits is never used to
	// verify anything.
	ErrKeyTooLarge = errors.New("policy: RSA key too large")
)

// MaxRSAModulusBits caps the RSA keys pecet verifies with: the cost of a
// verification grows with the square of the modulus, and a certificate of
// a few kilobytes can carry a modulus that takes seconds.
const MaxRSAModulusBits = 8192

// Limits is the work one Verify, ValidateCertificate or time-stamp
// verification may do, over every path, CRL and time-stamp it touches.
type Limits struct {
	// SignatureChecks bounds public-key operations (certificates, CRLs,
	// OCSP responses); cached repeats are free.
	SignatureChecks int
	// SignatureCost bounds their cost in units of one RSA-2048 check: a
	// P-521 or RSA-8192 check costs 40 to 110 times as much (sigCost).
	SignatureCost int
	// Paths bounds the complete candidate paths validated, CRL signers'
	// paths included.
	Paths int
	// Steps bounds the cheap but multiplying work: candidate issuers
	// considered while building paths and CRL × distribution point scope
	// tests.
	Steps int
	// Bytes bounds the bytes parsed: the request's certificates and CRLs
	// and CRLs fetched during the call.
	Bytes int64
}

// DefaultLimits fit every real chain by orders of magnitude (the hardest
// NIST PKITS case needs 10 signature checks and 30 steps; a Czech
// qualified signature about as many) and keep the worst request found
// under half a second of CPU on a 2-core machine (docs/security.md "Work
// budget per verification").
var DefaultLimits = Limits{SignatureChecks: 1024, SignatureCost: 4096, Paths: 128, Steps: 8192, Bytes: 64 << 20}

// BudgetCounts is the work done so far.
type BudgetCounts struct {
	SignatureChecks, SignatureCost, CachedChecks, Paths, Steps int
	Bytes                                                      int64
}

// Budget counts the work of one call and caches its signature checks. It
// may be shared by the validations of one call (a signature, its
// time-stamps, CRL signers' paths); it is safe for concurrent use. Once
// exhausted or once the call's context is done, every further charge
// fails, so the loops that charge it stop.
type Budget struct {
	ctx context.Context
	lim Limits

	mu    sync.Mutex
	n     BudgetCounts
	cache map[[32]byte]error
	// sums memoises the digest of large signed bytes (a CRL's TBS can be
	// megabytes) by identity, so a cache lookup does not rehash them.
	sums map[sliceID][32]byte
	err  error
}

// sliceID identifies a byte slice by its first byte's address and length;
// holding the pointer keeps the bytes alive while the budget lives.
type sliceID struct {
	p *byte
	n int
}

// NewBudget starts a budget for one call; ctx is the call's (nil means
// context.Background). Zero fields of lim take DefaultLimits.
func NewBudget(ctx context.Context, lim Limits) *Budget {
	if ctx == nil {
		ctx = context.Background()
	}
	if lim.SignatureChecks <= 0 {
		lim.SignatureChecks = DefaultLimits.SignatureChecks
	}
	if lim.SignatureCost <= 0 {
		lim.SignatureCost = DefaultLimits.SignatureCost
	}
	if lim.Paths <= 0 {
		lim.Paths = DefaultLimits.Paths
	}
	if lim.Steps <= 0 {
		lim.Steps = DefaultLimits.Steps
	}
	if lim.Bytes <= 0 {
		lim.Bytes = DefaultLimits.Bytes
	}
	return &Budget{ctx: ctx, lim: lim, cache: map[[32]byte]error{}, sums: map[sliceID][32]byte{}}
}

type budgetKey struct{}

// WithBudget returns a context carrying b: the Engine charges the
// validations of a request whose Context carries a budget to it.
func WithBudget(ctx context.Context, b *Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// BudgetFrom returns the budget ctx carries, or nil.
func BudgetFrom(ctx context.Context) *Budget {
	if ctx == nil {
		return nil
	}
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}

// Err is nil while work may continue; otherwise ErrWorkBudget (wrapped,
// naming the limit) or the context's error.
func (b *Budget) Err() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopped()
}

// Counts returns the work done so far.
func (b *Budget) Counts() BudgetCounts {
	if b == nil {
		return BudgetCounts{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// Limits returns the limits in force.
func (b *Budget) Limits() Limits {
	if b == nil {
		return Limits{}
	}
	return b.lim
}

// stopped must be called with mu held.
func (b *Budget) stopped() error {
	if b.err != nil {
		return b.err
	}
	if err := b.ctx.Err(); err != nil {
		b.err = err
	}
	return b.err
}

func (b *Budget) charge(what string, used *int, limit int) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.stopped(); err != nil {
		return err
	}
	if *used >= limit {
		b.err = fmt.Errorf("%w: more than %d %s", ErrWorkBudget, limit, what)
		return b.err
	}
	*used++
	return nil
}

// Step charges one unit of the cheap, multiplying work and checks the
// call's context.
func (b *Budget) Step() error {
	if b == nil {
		return nil
	}
	return b.charge("steps (candidate issuers, CRL scope tests)", &b.n.Steps, b.lim.Steps)
}

// Path charges one complete candidate path.
func (b *Budget) Path() error {
	if b == nil {
		return nil
	}
	return b.charge("candidate paths", &b.n.Paths, b.lim.Paths)
}

// Signature charges one public-key operation done elsewhere (an OCSP
// response's signature, key unknown in advance).
func (b *Budget) Signature() error {
	if b == nil {
		return nil
	}
	return b.chargeSignature(sigCostDefault)
}

// SignatureWith charges one public-key operation with key that the caller
// does itself (a CMS signer's or a time-stamp token's signature, whose
// scheme crypto/x509 does not name), weighted as CheckSignature weighs
// it. The caller checks each signature once per call.
func (b *Budget) SignatureWith(key any) error {
	if b == nil {
		return nil
	}
	return b.chargeSignature(sigCost(key))
}

func (b *Budget) chargeSignature(cost int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.stopped(); err != nil {
		return err
	}
	if b.n.SignatureChecks >= b.lim.SignatureChecks {
		b.err = fmt.Errorf("%w: more than %d signature checks", ErrWorkBudget, b.lim.SignatureChecks)
		return b.err
	}
	if b.n.SignatureCost+cost > b.lim.SignatureCost {
		b.err = fmt.Errorf("%w: signature checks costing more than %d RSA-2048 checks", ErrWorkBudget, b.lim.SignatureCost)
		return b.err
	}
	b.n.SignatureChecks++
	b.n.SignatureCost += cost
	return nil
}

// sigCostDefault is the cost of a check whose key is not known here.
const sigCostDefault = 4

// sigCost is the cost of one verification with key in units of an
// RSA-2048 check, measured with crypto/rsa and crypto/ecdsa (RSA grows
// with the square of the modulus; P-384 and P-521 have no assembly
// fast path). docs/security.md "Work budget per verification".
func sigCost(key any) int {
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits <= 2048:
			return 1
		case bits <= 3072:
			return 4
		case bits <= 4096:
			return 12
		case bits <= 6144:
			return 24
		default:
			return 44
		}
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return 3
		case 384:
			return 22
		default:
			return 110
		}
	case ed25519.PublicKey:
		return 2
	}
	return sigCostDefault
}

// Bytes charges n bytes parsed.
func (b *Budget) Bytes(n int) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.stopped(); err != nil {
		return err
	}
	if b.n.Bytes+int64(n) > b.lim.Bytes {
		b.err = fmt.Errorf("%w: more than %d bytes of certificates and CRLs", ErrWorkBudget, b.lim.Bytes)
		return b.err
	}
	b.n.Bytes += int64(n)
	return nil
}

// CheckSignature verifies signature over signed with signer's key, like
// x509.Certificate.CheckSignature, at most once per call for the same key,
// algorithm, signed bytes and signature; RSA keys above MaxRSAModulusBits
// are refused unverified (ErrKeyTooLarge). A nil budget verifies without
// counting, but still refuses oversized keys. The error is ErrWorkBudget
// or the context's when the call must stop; callers tell it apart with
// IsStop.
func (b *Budget) CheckSignature(signer *x509.Certificate, alg x509.SignatureAlgorithm, signed, signature []byte) error {
	if k, ok := signer.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() > MaxRSAModulusBits {
		return fmt.Errorf("%w: %d bits, at most %d are verified", ErrKeyTooLarge, k.N.BitLen(), MaxRSAModulusBits)
	}
	if b == nil {
		return signer.CheckSignature(alg, signed, signature)
	}
	b.mu.Lock()
	if err := b.stopped(); err != nil {
		b.mu.Unlock()
		return err
	}
	var id sliceID
	if len(signed) > 0 {
		id = sliceID{&signed[0], len(signed)}
	}
	sum, ok := b.sums[id]
	if !ok {
		sum = sha256.Sum256(signed)
		if len(b.sums) < 1<<16 {
			b.sums[id] = sum
		}
	}
	key := sigCacheKey(signer.RawSubjectPublicKeyInfo, alg, sum[:], signature)
	if err, ok := b.cache[key]; ok {
		b.n.CachedChecks++
		b.mu.Unlock()
		return err
	}
	b.mu.Unlock()
	if err := b.chargeSignature(sigCost(signer.PublicKey)); err != nil {
		return err
	}
	err := signer.CheckSignature(alg, signed, signature)
	b.mu.Lock()
	b.cache[key] = err
	b.mu.Unlock()
	return err
}

// budgetDetail is the limit an ErrWorkBudget names ("more than 1024
// signature checks").
func budgetDetail(err error) string {
	return strings.TrimPrefix(err.Error(), ErrWorkBudget.Error()+": ")
}

// IsStop reports whether err means the call must stop (budget or
// context), as opposed to a signature that does not verify.
func IsStop(err error) bool {
	return errors.Is(err, ErrWorkBudget) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// sigCacheKey identifies one verification: the key, the algorithm, the
// digest of what was signed and the signature, each length-prefixed.
func sigCacheKey(spki []byte, alg x509.SignatureAlgorithm, signedSum, signature []byte) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{spki, signedSum, signature} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	binary.BigEndian.PutUint64(n[:], uint64(alg))
	h.Write(n[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}
