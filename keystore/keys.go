package keystore

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// loadAlias reads one alias from the token: its metadata object, key
// objects and certificates. Another process may destroy an object between
// our C_FindObjects and C_GetAttributeValue (a concurrent lifecycle change):
// the read is then done again, a few times, rather than failing.
func loadAlias(p p11, sh pkcs11.SessionHandle, alias string) (e *entry, err error) {
	for range 4 {
		if e, err = loadAliasOnce(p, sh, alias); err == nil || !rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			return e, err
		}
	}
	return nil, err
}

// metaObject is one metadata object of an alias.
type metaObject struct {
	h pkcs11.ObjectHandle
	m *meta
}

// readMetas reads every metadata object of an alias.
func readMetas(p p11, sh pkcs11.SessionHandle, alias string) ([]metaObject, error) {
	hs, err := findObjects(p, sh, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, appName), attr(pkcs11.CKA_LABEL, alias)})
	if err != nil {
		return nil, err
	}
	out := make([]metaObject, 0, len(hs))
	for _, h := range hs {
		v, err := getAttrs(p, sh, h, pkcs11.CKA_VALUE)
		if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			continue // destroyed by another process's change meanwhile
		}
		if err != nil {
			return nil, err
		}
		m, err := parseMeta(v[0])
		if err != nil {
			return nil, fmt.Errorf("alias %q: %w", alias, err)
		}
		out = append(out, metaObject{h: h, m: m})
	}
	return out, nil
}

// pickMeta chooses the current metadata object: the highest generation,
// and among equals the smallest nonce, so that every reader on every
// replica picks the same one while two writers race (docs/security.md
// "Replicas changing one key"). tie reports equals at the top.
func pickMeta(ms []metaObject) (cur metaObject, tie bool) {
	for i, mo := range ms {
		switch {
		case i == 0 || mo.m.Generation > cur.m.Generation:
			cur, tie = mo, false
		case mo.m.Generation == cur.m.Generation:
			tie = true
			if mo.m.Nonce < cur.m.Nonce {
				cur = mo
			}
		}
	}
	return cur, tie
}

// certObject is one certificate object; private ones (this release) win
// over public ones (older tokens, or written by a process without login).
type certObject struct {
	c       *x509.Certificate
	private bool
}

func loadAliasOnce(p p11, sh pkcs11.SessionHandle, alias string) (*entry, error) {
	label := attr(pkcs11.CKA_LABEL, alias)
	metas, err := readMetas(p, sh, alias)
	if err != nil {
		return nil, err
	}
	if len(metas) == 0 {
		// Key objects without a metadata object: another process is
		// creating the alias, or (SoftHSM) this process has not yet seen
		// the metadata another one just wrote (refreshIndex).
		if hs, err := findObjects(p, sh, []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), label}); err == nil && len(hs) > 0 {
			return nil, fmt.Errorf("%w: %q: %w", ErrKeyNotFound, alias, errUnsettled)
		}
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, alias)
	}
	cur, tie := pickMeta(metas)
	m := cur.m
	e := &entry{meta: m, data: cur.h, tie: tie, priv: map[int]pkcs11.ObjectHandle{}, pub: map[int]pkcs11.ObjectHandle{}, readAt: time.Now()}
	// Two private keys with one version's id: two replicas rotating at
	// once, the loser about to remove its pair. pubs: every public key
	// object per version (anyone may add one where public objects are
	// writable without login).
	dupPriv := map[int]bool{}
	pubs := map[int][]pkcs11.ObjectHandle{}

	for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
		hs, err := findObjects(p, sh, []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, class), label})
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			id, err := getAttrs(p, sh, h, pkcs11.CKA_ID)
			if err != nil {
				return nil, err
			}
			ver, err := strconv.Atoi(string(id[0]))
			if err != nil {
				continue // not one of ours
			}
			if class == pkcs11.CKO_PRIVATE_KEY {
				if _, ok := e.priv[ver]; ok {
					dupPriv[ver] = true
				}
				e.priv[ver] = h
			} else {
				pubs[ver] = append(pubs[ver], h)
			}
		}
	}

	leaves := map[int][]certObject{}
	issuers := map[int]map[int]certObject{}
	// byID: every certificate object per version and position, for the
	// versions whose metadata names its chain (committedChain).
	byID := map[[2]int][]certObject{}
	certs, err := findObjects(p, sh, []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE), label})
	if err != nil {
		return nil, err
	}
	for _, h := range certs {
		v, err := getAttrs(p, sh, h, pkcs11.CKA_ID, pkcs11.CKA_VALUE, pkcs11.CKA_PRIVATE)
		if err != nil {
			return nil, err
		}
		ver, n, ok := parseCertID(string(v[0]))
		if !ok {
			continue
		}
		c, err := x509.ParseCertificate(v[1])
		if err != nil {
			return nil, fmt.Errorf("keystore: alias %q certificate %q: %w", alias, v[0], err)
		}
		co := certObject{c: c, private: len(v[2]) == 1 && v[2][0] != 0}
		byID[[2]int{ver, n}] = append(byID[[2]int{ver, n}], co)
		if n == 0 {
			leaves[ver] = append(leaves[ver], co)
			continue
		}
		if issuers[ver] == nil {
			issuers[ver] = map[int]certObject{}
		}
		if old, ok := issuers[ver][n]; !ok || (co.private && !old.private) {
			issuers[ver][n] = co
		}
	}

	e.key = Key{Alias: alias, Purpose: m.Purpose, Algorithm: m.Algorithm, PrimaryVersion: m.Primary}
	for _, mv := range m.Versions {
		ver := Version{Alias: alias, Version: mv.Version, Purpose: m.Purpose, Algorithm: m.Algorithm,
			State: mv.State, Primary: mv.Version == m.Primary, CreatedAt: mv.Created,
			BeenPrimary: !mv.NeverPrimary || mv.Version == m.Primary}
		for i, h := range pubs[mv.Version] {
			pub, err := readPublicKey(p, sh, h)
			if err != nil {
				// Often another process's key pair still being written.
				return nil, fmt.Errorf("alias %q version %d: %w: %w", alias, mv.Version, errUnsettled, err)
			}
			// Of several, the one the metadata recorded.
			if i == 0 || (mv.PublicSHA256 != "" && publicSum(pub) == mv.PublicSHA256) {
				ver.Public, e.pub[mv.Version] = pub, h
			}
		}
		keyProblem, err := checkKeyPair(p, sh, e, mv, &ver)
		if err != nil {
			return nil, fmt.Errorf("alias %q version %d: %w: %w", alias, mv.Version, errUnsettled, err)
		}
		if dupPriv[mv.Version] {
			keyProblem = "" // a rotation race settling, not a replaced object
		}
		switch {
		case len(mv.Chain) > 0:
			ver.Chain = committedChain(byID, mv)
		case mv.State == StatePendingCertificate:
			// Certificate objects beside a version the metadata still
			// calls pending are a failed import's: none is in force.
		default:
			ver.Chain = legacyChain(leaves[mv.Version], issuers[mv.Version], ver.Public)
		}
		if ver.Chain != nil {
			leaf := ver.Chain[0]
			switch {
			case ver.Public == nil && mv.State == StateDestroyed:
				// The key objects are gone; the certificate still says
				// which key it was (fingerprints, attribution).
				ver.Public = leaf.PublicKey
			case keyProblem == "" && !samePublicKey(ver.Public, leaf.PublicKey):
				keyProblem = problemCertificate
			}
		}
		if ver.Chain == nil && keyProblem == "" && (mv.State == StateEnabled || mv.State == StateDisabled) {
			// Certified once, so a certificate was removed (or, on
			// SoftHSM, is not visible to this process yet).
			keyProblem = problemNoCertificate
		}
		ver.Problem = keyProblem
		e.key.Versions = append(e.key.Versions, ver)
	}
	slices.SortFunc(e.key.Versions, func(a, b Version) int { return a.Version - b.Version })
	return e, nil
}

// maxStoredChain bounds the issuers read per version (ImportCertificate
// takes at most 8 certificates).
const maxStoredChain = 16

// committedChain is the chain the metadata names (metaVersion.Chain): at
// each position the certificate object with that SHA-256, whatever else
// carries the version's id (the old chain an import has not removed yet,
// the new one of an import that failed, one added by someone else). A
// missing leaf gives no chain (the version is then refused as having lost
// its certificate); a missing issuer ends the chain there.
func committedChain(byID map[[2]int][]certObject, mv metaVersion) []*x509.Certificate {
	var chain []*x509.Certificate
	for n, want := range mv.Chain {
		if n > maxStoredChain {
			break
		}
		var found *x509.Certificate
		for _, co := range byID[[2]int{mv.Version, n}] {
			if certSum(co.c) == want {
				found = co.c
				break
			}
		}
		if found == nil {
			break
		}
		chain = append(chain, found)
	}
	return chain
}

// legacyChain is the chain of a version whose metadata names none (written
// by an older release): the certificate objects decide (pickLeaf).
func legacyChain(leaves []certObject, issuers map[int]certObject, pub crypto.PublicKey) []*x509.Certificate {
	leaf := pickLeaf(leaves, pub)
	if leaf == nil {
		return nil
	}
	chain := []*x509.Certificate{leaf}
	for n := 1; n <= maxStoredChain; n++ {
		co, ok := issuers[n]
		if !ok {
			break
		}
		chain = append(chain, co.c)
	}
	return chain
}

// certSum is the SHA-256 of a certificate's DER, hex (metaVersion.Chain).
func certSum(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Problems that refuse a version (Version.Problem): fixed texts, shown in
// ListKeys (docs/security.md "Certificates on the token").
const (
	problemCertificate   = "the certificate on the token does not match the key pair (replaced on the token?): refused until an officer imports a matching certificate"
	problemPublicKey     = "the public key object on the token does not match the private key (replaced on the token?): refused"
	problemNoCertificate = "the certificate of this certified version is missing on the token (removed?): refused until an officer imports it again"
)

// pickLeaf chooses a version's leaf among the certificate objects with its
// id: private objects first (a process without login can add public ones),
// then one that matches the key; nil when there is none.
func pickLeaf(cands []certObject, pub crypto.PublicKey) *x509.Certificate {
	var best *certObject
	for i := range cands {
		co := &cands[i]
		score := func(c *certObject) int {
			s := 0
			if c.private {
				s += 2
			}
			if pub != nil && samePublicKey(pub, c.c.PublicKey) {
				s++
			}
			return s
		}
		if best == nil || score(co) > score(best) {
			best = co
		}
	}
	if best == nil {
		return nil
	}
	return best.c
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	k, ok := a.(equaler)
	return ok && b != nil && k.Equal(b)
}

// checkKeyPair checks that a version's public key object belongs to its
// private key, so that the certificate is then compared with the key that
// really signs or decrypts. Public key and certificate objects may be
// written by a session without login on many tokens; the private key and
// the metadata may not. For RSA the private key's CKA_MODULUS and
// CKA_PUBLIC_EXPONENT (never sensitive) are the reference; for EC, which has
// no public point on the private key, the SHA-256 of the public key that
// the metadata recorded at generation (versions made by this release).
func checkKeyPair(p p11, sh pkcs11.SessionHandle, e *entry, mv metaVersion, ver *Version) (problem string, err error) {
	h, ok := e.priv[mv.Version]
	if !ok || mv.State == StateDestroyed {
		return "", nil
	}
	if rsaBits(e.meta.Algorithm) > 0 {
		v, err := getAttrs(p, sh, h, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return "", err
		}
		ex := new(big.Int).SetBytes(v[1])
		if len(v[0]) == 0 || !ex.IsInt64() || ex.Int64() < 3 || ex.Int64() > 1<<31-1 {
			return "", errors.New("keystore: token returned a malformed RSA private key modulus")
		}
		priv := &rsa.PublicKey{N: new(big.Int).SetBytes(v[0]), E: int(ex.Int64())}
		if ver.Public != nil && !priv.Equal(ver.Public) {
			ver.Public = priv // the key that really decrypts and signs
			return problemPublicKey, nil
		}
		ver.Public = priv
		return "", nil
	}
	if mv.PublicSHA256 != "" && ver.Public != nil && publicSum(ver.Public) != mv.PublicSHA256 {
		return problemPublicKey, nil
	}
	return "", nil
}

// publicSum is the SHA-256 of a public key's SubjectPublicKeyInfo, hex.
func publicSum(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// parseCertID splits "3" (leaf of version 3, n=0) or "3/2" (second issuer).
func parseCertID(id string) (ver, n int, ok bool) {
	vs, ns, chain := strings.Cut(id, "/")
	ver, err := strconv.Atoi(vs)
	if err != nil || ver < 1 {
		return 0, 0, false
	}
	if !chain {
		return ver, 0, true
	}
	n, err = strconv.Atoi(ns)
	if err != nil || n < 1 {
		return 0, 0, false
	}
	return ver, n, true
}

// lookup returns the alias from the cache while fresh, else from the token.
func (s *Store) lookup(ctx context.Context, alias string) (e *entry, cached bool, err error) {
	if err := checkAlias(alias); err != nil {
		return nil, false, err
	}
	if e := s.cache.fresh(alias, s.ttl); e != nil && e.gen == s.gen.Load() {
		return e, true, nil
	}
	e, err = s.reload(ctx, alias)
	return e, false, err
}

// reload reads the alias from the token and caches it, sharing a read
// already under way.
func (s *Store) reload(ctx context.Context, alias string) (*entry, error) {
	return s.cache.load(ctx, alias, true, func() (*entry, error) { return s.read(ctx, alias) })
}

// reloadOwn rereads after a change of ours: a read begun before the change
// must not answer it.
func (s *Store) reloadOwn(ctx context.Context, alias string) (*entry, error) {
	return s.cache.load(ctx, alias, false, func() (*entry, error) { return s.read(ctx, alias) })
}

// errUnsettled: the alias has key objects but no metadata object visible
// yet (wrapped in ErrKeyNotFound), or a key object reads as malformed
// (another process is still writing it). Reads and changes try again a few
// times (another process's write ends, or SoftHSM's index catches up on a
// nudge).
var errUnsettled = errors.New("keystore: alias not settled on the token yet")

// unsettledTries bounds the waits for an unsettled alias (about a second).
const unsettledTries = 6

func (s *Store) read(ctx context.Context, alias string) (e *entry, err error) {
	for try := 1; ; try++ {
		e, err = s.readOnce(ctx, alias)
		if !errors.Is(err, errUnsettled) || try == unsettledTries {
			return e, err
		}
		select {
		case <-time.After(time.Duration(try) * 50 * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
	}
}

func (s *Store) readOnce(ctx context.Context, alias string) (*entry, error) {
	var e *entry
	err := s.withSession(ctx, func(sh pkcs11.SessionHandle) (err error) {
		e, err = loadAlias(s.p, sh, alias)
		if e != nil {
			e.gen = s.gen.Load() // stable: we hold the module gate
		}
		return err
	})
	if err != nil {
		// Do not read e: a call abandoned at its deadline may still be
		// setting it on the token goroutine.
		return nil, err
	}
	s.warnProblems(e)
	return e, nil
}

// warnProblems logs each refused version of e once per Store.
func (s *Store) warnProblems(e *entry) {
	for _, v := range e.key.Versions {
		if v.Problem == "" {
			continue
		}
		if _, seen := s.warned.LoadOrStore(fmt.Sprintf("%s/%d/%s", v.Alias, v.Version, v.Problem), true); !seen {
			s.log.Error("key version refused", "alias", v.Alias, "version", v.Version, "problem", v.Problem)
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrKeyNotFound) }

// resolve picks the usable version (0 = primary) of a key for a purpose.
func (e *entry) resolve(version int, p Purpose) (Version, pkcs11.ObjectHandle, error) {
	if e.key.Purpose != p {
		return Version{}, 0, fmt.Errorf("%w: %q is %s, not %s", ErrWrongPurpose, e.key.Alias, e.key.Purpose, p)
	}
	if version == 0 {
		if version = e.key.PrimaryVersion; version == 0 {
			return Version{}, 0, fmt.Errorf("%w: %q", ErrNoPrimary, e.key.Alias)
		}
	}
	i := slices.IndexFunc(e.key.Versions, func(v Version) bool { return v.Version == version })
	if i < 0 {
		return Version{}, 0, fmt.Errorf("%w: %q version %d", ErrVersionNotFound, e.key.Alias, version)
	}
	v := e.key.Versions[i]
	if v.State != StateEnabled {
		return Version{}, 0, fmt.Errorf("%w: %q version %d is %s", ErrKeyNotEnabled, v.Alias, version, v.State)
	}
	if v.Problem != "" {
		return Version{}, 0, fmt.Errorf("%w: %q version %d: %s", ErrVersionRefused, v.Alias, version, v.Problem)
	}
	h, ok := e.priv[version]
	if !ok || v.Public == nil {
		return Version{}, 0, fmt.Errorf("%w: %q version %d has lost its key objects", ErrVersionNotFound, v.Alias, version)
	}
	return v, h, nil
}

// usable finds a version for an operation. It trusts a fresh cache entry,
// but an answer of "no such version / not enabled / no primary" from the
// cache is a miss and checked against the token once more: another process
// may have just rotated or certified the key.
func (s *Store) usable(ctx context.Context, alias string, version int, p Purpose) (Version, pkcs11.ObjectHandle, uint64, error) {
	e, cached, err := s.lookup(ctx, alias)
	if err != nil {
		return Version{}, 0, 0, err
	}
	v, h, err := e.resolve(version, p)
	if err != nil && cached && (errors.Is(err, ErrVersionNotFound) || errors.Is(err, ErrKeyNotEnabled) || errors.Is(err, ErrNoPrimary)) {
		if e, err = s.reload(ctx, alias); err != nil {
			return Version{}, 0, 0, err
		}
		v, h, err = e.resolve(version, p)
	}
	return v, h, e.gen, err
}

// ListKeys lists every alias on the token, sorted, always read from it.
func (s *Store) ListKeys(ctx context.Context) ([]Key, error) {
	var entries []*entry
	err := s.withSession(ctx, func(sh pkcs11.SessionHandle) (err error) {
		entries, err = s.listOn(sh)
		return err
	})
	if err != nil {
		return nil, err
	}
	keys := make([]Key, 0, len(entries))
	for _, e := range entries {
		s.warnProblems(e)
		s.cache.put(e.key.Alias, e)
		keys = append(keys, e.key)
	}
	slices.SortFunc(keys, func(a, b Key) int { return strings.Compare(a.Alias, b.Alias) })
	return keys, nil
}

// listOn reads every alias on the token with session sh. The caller holds
// the module gate, so the generation it stamps is the handles'.
func (s *Store) listOn(sh pkcs11.SessionHandle) ([]*entry, error) {
	hs, err := findObjects(s.p, sh, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, appName)})
	if err != nil {
		return nil, err
	}
	var entries []*entry
	seen := map[string]bool{}
	for _, h := range hs {
		l, err := getAttrs(s.p, sh, h, pkcs11.CKA_LABEL)
		if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			continue // replaced by another process's change meanwhile
		}
		if err != nil {
			return nil, err
		}
		alias := string(l[0])
		if seen[alias] || checkAlias(alias) != nil {
			continue
		}
		seen[alias] = true
		e, err := loadAlias(s.p, sh, alias)
		for try := 1; errors.Is(err, errUnsettled) && try < unsettledTries; try++ {
			time.Sleep(time.Duration(try) * 20 * time.Millisecond)
			e, err = loadAlias(s.p, sh, alias)
		}
		switch {
		case isNotFound(err):
			continue // removed meanwhile
		case err != nil && (errors.Is(err, ErrTokenUnavailable) || sessionLost(err)):
			return nil, err
		case err != nil:
			// One unreadable alias does not hide the others: it lists
			// with its error (docs/security.md "Replicas changing one key").
			s.log.Warn("key alias cannot be read from the token", "alias", alias, "err", err)
			e = &entry{key: Key{Alias: alias, Err: err}}
		}
		e.gen = s.gen.Load()
		entries = append(entries, e)
	}
	return entries, nil
}

// GetKey returns one alias.
func (s *Store) GetKey(ctx context.Context, alias string) (Key, error) {
	e, _, err := s.lookup(ctx, alias)
	if err != nil {
		return Key{}, err
	}
	return e.key, nil
}

// Signer returns a crypto.Signer for an ENABLED version (0 = primary) of a key
// with the given purpose. ctx bounds waits for a pooled session, here and in
// the KeySigner's later Sign calls (SignContext takes a per-call one).
func (s *Store) Signer(ctx context.Context, alias string, version int, p Purpose) (*KeySigner, error) {
	if p == PurposeDecrypt {
		return nil, fmt.Errorf("%w: a signer cannot have purpose %s", ErrWrongPurpose, p)
	}
	v, h, gen, err := s.usable(ctx, alias, version, p)
	if err != nil {
		return nil, err
	}
	return &KeySigner{v: v, s: s, h: h, gen: gen, ctx: ctx}, nil
}

// Decrypter returns a crypto.Decrypter for an ENABLED version (0 = primary)
// of a DECRYPT key. ctx bounds session waits as for Signer.
func (s *Store) Decrypter(ctx context.Context, alias string, version int) (*KeyDecrypter, error) {
	v, h, gen, err := s.usable(ctx, alias, version, PurposeDecrypt)
	if err != nil {
		return nil, err
	}
	return &KeyDecrypter{v: v, s: s, h: h, gen: gen, ctx: ctx}, nil
}
