package keystore

import (
	"context"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Generation is the module generation the Store's handles belong to.
func Generation(s *Store) uint64 { return s.gen.Load() }

// HoldSession takes one pooled session until release is called.
func HoldSession(ctx context.Context, s *Store) (release func(), err error) {
	sh, err := s.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	return func() { s.pool.put(sh, true) }, nil
}

// RawKey opens a session of its own on the Store's token (outside the pool)
// and finds a version's private key, for the raw-PKCS#11 benchmark.
func RawKey(s *Store, alias string, version int) (*pkcs11.Ctx, pkcs11.SessionHandle, pkcs11.ObjectHandle, func(), error) {
	ctx := s.mod.ctx
	sh, err := ctx.OpenSession(s.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, 0, 0, nil, err
	}
	hs, err := findObjects(ctx, sh, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY), attr(pkcs11.CKA_LABEL, alias), attr(pkcs11.CKA_ID, versionID(version))})
	if err != nil || len(hs) != 1 {
		_ = ctx.CloseSession(sh)
		return nil, 0, 0, nil, fmt.Errorf("raw key: %d objects, %w", len(hs), err)
	}
	return ctx, sh, hs[0], func() { _ = ctx.CloseSession(sh) }, nil
}

// PurgePool closes every idle pooled session, as after a lost one.
func PurgePool(s *Store) { s.pool.purgeIdle() }

// PrivateKeyAttrs reads CKA_SENSITIVE and CKA_EXTRACTABLE of a version's
// private key.
func PrivateKeyAttrs(s *Store, alias string, version int) (sensitive, extractable bool, err error) {
	ctx, sh, h, done, err := RawKey(s, alias, version)
	if err != nil {
		return false, false, err
	}
	defer done()
	v, err := getAttrs(ctx, sh, h, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE)
	if err != nil {
		return false, false, err
	}
	return len(v[0]) == 1 && v[0][0] == 1, len(v[1]) == 1 && v[1][0] == 1, nil
}

// KeyObjects counts the private and public key objects of one version on
// the token (read directly, not through the cache).
func KeyObjects(s *Store, alias string, version int) (priv, pub int, err error) {
	err = s.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			hs, err := findObjects(s.p, sh, []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, class), attr(pkcs11.CKA_LABEL, alias), attr(pkcs11.CKA_ID, versionID(version))})
			if err != nil {
				return err
			}
			if class == pkcs11.CKO_PRIVATE_KEY {
				priv = len(hs)
			} else {
				pub = len(hs)
			}
		}
		return nil
	})
	return priv, pub, err
}

// MakeChainPublic rewrites a version's certificate objects as an older
// release wrote them: public (CKA_PRIVATE false), readable and writable by
// a session without login.
func MakeChainPublic(s *Store, alias string, version int) error {
	return s.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		hs, err := findObjects(s.p, sh, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE), attr(pkcs11.CKA_LABEL, alias)})
		if err != nil {
			return err
		}
		for _, h := range hs {
			v, err := getAttrs(s.p, sh, h, pkcs11.CKA_ID, pkcs11.CKA_VALUE, pkcs11.CKA_SUBJECT, pkcs11.CKA_CERTIFICATE_CATEGORY)
			if err != nil {
				return err
			}
			if ver, _, ok := parseCertID(string(v[0])); !ok || ver != version {
				continue
			}
			if _, err := s.p.CreateObject(sh, []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
				attr(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
				attr(pkcs11.CKA_CERTIFICATE_CATEGORY, v[3]),
				attr(pkcs11.CKA_TOKEN, true),
				attr(pkcs11.CKA_PRIVATE, false),
				attr(pkcs11.CKA_LABEL, alias),
				attr(pkcs11.CKA_ID, v[0]),
				attr(pkcs11.CKA_SUBJECT, v[2]),
				attr(pkcs11.CKA_VALUE, v[1]),
			}); err != nil {
				return err
			}
			if err := s.p.DestroyObject(sh, h); err != nil {
				return err
			}
		}
		s.cache.invalidate(alias)
		return nil
	})
}

// PutRawMeta adds a metadata object with the given value for alias, as
// another process (or damage) could leave it.
func PutRawMeta(s *Store, alias string, value []byte) error {
	return s.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		_, err := s.p.CreateObject(sh, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
			attr(pkcs11.CKA_TOKEN, true),
			attr(pkcs11.CKA_PRIVATE, true),
			attr(pkcs11.CKA_APPLICATION, appName),
			attr(pkcs11.CKA_LABEL, alias),
			attr(pkcs11.CKA_VALUE, value),
		})
		s.cache.invalidate(alias)
		return err
	})
}

// RawMetas returns the values of alias's metadata objects.
func RawMetas(s *Store, alias string) (out [][]byte, err error) {
	err = s.withSession(context.Background(), func(sh pkcs11.SessionHandle) error {
		ms, err := readMetas(s.p, sh, alias)
		for _, m := range ms {
			b, _ := m.m.marshal()
			out = append(out, b)
		}
		return err
	})
	return out, err
}
