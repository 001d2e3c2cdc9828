package keystore

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// FaultP11 wraps the module's calls for tests: it counts logins and can make
// the next C_Sign calls report a lost session.
type FaultP11 struct {
	p11
	Logins        atomic.Int32
	Finds         atomic.Int32 // C_FindObjectsInit calls
	Signs         atomic.Int32
	LoseSessions  atomic.Int32 // C_Sign calls still to fail with CKR_SESSION_HANDLE_INVALID
	ClosedSession atomic.Int32
}

func (f *FaultP11) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	f.Finds.Add(1)
	return f.p11.FindObjectsInit(sh, temp)
}

func (f *FaultP11) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	f.Logins.Add(1)
	return f.p11.Login(sh, userType, pin)
}

func (f *FaultP11) Sign(sh pkcs11.SessionHandle, msg []byte) ([]byte, error) {
	f.Signs.Add(1)
	if f.LoseSessions.Add(-1) >= 0 {
		return nil, pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	return f.p11.Sign(sh, msg)
}

func (f *FaultP11) CloseSession(sh pkcs11.SessionHandle) error {
	f.ClosedSession.Add(1)
	return f.p11.CloseSession(sh)
}

// OpenFault opens a Store whose PKCS#11 calls go through a FaultP11. The
// FaultP11 is returned even when Open fails.
func OpenFault(ctx context.Context, cfg Config) (*Store, *FaultP11, error) {
	f := &FaultP11{}
	s, err := open(ctx, cfg, func(p p11) p11 { f.p11 = p; return f })
	return s, f, err
}

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
		return nil, 0, 0, nil, fmt.Errorf("raw key: %d objects, %v", len(hs), err)
	}
	return ctx, sh, hs[0], func() { _ = ctx.CloseSession(sh) }, nil
}
