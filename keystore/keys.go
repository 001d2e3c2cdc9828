package keystore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/pkcs11"
)

// loadAlias reads one alias from the token: its metadata object, key
// objects and certificates.
func loadAlias(p p11, sh pkcs11.SessionHandle, alias string) (*entry, error) {
	label := attr(pkcs11.CKA_LABEL, alias)
	datas, err := findObjects(p, sh, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, appName), label})
	if err != nil {
		return nil, err
	}
	if len(datas) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrKeyNotFound, alias)
	}
	var m *meta
	var data pkcs11.ObjectHandle
	tie := false
	for _, h := range datas {
		v, err := getAttrs(p, sh, h, pkcs11.CKA_VALUE)
		if err != nil {
			return nil, err
		}
		mm, err := parseMeta(v[0])
		if err != nil {
			return nil, fmt.Errorf("alias %q: %w", alias, err)
		}
		switch {
		case m == nil || mm.Generation > m.Generation:
			m, data, tie = mm, h, false
		case mm.Generation == m.Generation:
			tie = true
		}
	}
	if tie {
		// Two processes created or changed the alias at the same moment
		// (PKCS#11 has no compare-and-swap). Refuse rather than guess.
		return nil, fmt.Errorf("keystore: alias %q has conflicting metadata objects (generation %d); remove all but one", alias, m.Generation)
	}
	e := &entry{meta: m, data: data, priv: map[int]pkcs11.ObjectHandle{}, pub: map[int]pkcs11.ObjectHandle{}, readAt: time.Now()}

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
				e.priv[ver] = h
			} else {
				e.pub[ver] = h
			}
		}
	}

	leaves := map[int]*x509.Certificate{}
	issuers := map[int]map[int]*x509.Certificate{}
	certs, err := findObjects(p, sh, []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE), label})
	if err != nil {
		return nil, err
	}
	for _, h := range certs {
		v, err := getAttrs(p, sh, h, pkcs11.CKA_ID, pkcs11.CKA_VALUE)
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
		if n == 0 {
			leaves[ver] = c
		} else {
			if issuers[ver] == nil {
				issuers[ver] = map[int]*x509.Certificate{}
			}
			issuers[ver][n] = c
		}
	}

	e.key = Key{Alias: alias, Purpose: m.Purpose, Algorithm: m.Algorithm, PrimaryVersion: m.Primary}
	for _, mv := range m.Versions {
		ver := Version{Alias: alias, Version: mv.Version, Purpose: m.Purpose, Algorithm: m.Algorithm,
			State: mv.State, Primary: mv.Version == m.Primary, CreatedAt: mv.Created,
			BeenPrimary: !mv.NeverPrimary || mv.Version == m.Primary}
		if h, ok := e.pub[mv.Version]; ok {
			if ver.Public, err = readPublicKey(p, sh, h); err != nil {
				return nil, fmt.Errorf("alias %q version %d: %w", alias, mv.Version, err)
			}
		}
		if leaf := leaves[mv.Version]; leaf != nil {
			ver.Chain = []*x509.Certificate{leaf}
			for n := 1; issuers[mv.Version][n] != nil; n++ {
				ver.Chain = append(ver.Chain, issuers[mv.Version][n])
			}
			if ver.Public == nil && mv.State == StateDestroyed {
				// The key objects are gone; the certificate still says
				// which key it was (fingerprints, attribution).
				ver.Public = leaf.PublicKey
			}
		}
		e.key.Versions = append(e.key.Versions, ver)
	}
	slices.SortFunc(e.key.Versions, func(a, b Version) int { return a.Version - b.Version })
	return e, nil
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

func (s *Store) read(ctx context.Context, alias string) (*entry, error) {
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
	return e, nil
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
		if err != nil {
			return nil, err
		}
		alias := string(l[0])
		if seen[alias] || checkAlias(alias) != nil {
			continue
		}
		seen[alias] = true
		e, err := loadAlias(s.p, sh, alias)
		if err != nil {
			return nil, err
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
