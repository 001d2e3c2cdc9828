package faultinject

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/keystore"
)

// Faults sits between a Store and its PKCS#11 module and makes the module
// fail on demand: lost sessions, a removed device, a refused PIN, a slow
// token. SoftHSM never fails by itself, so this is how pecet's tests and its
// soak test reach the recovery code with a real token underneath. Only
// Open uses it: the tests, and a pecetd built with -tags faultinject for
// the soak (internal/daemon/faultinject.go), never a release pecetd. Its
// methods are safe for concurrent use, and its counters count the calls
// that reached it.
type Faults struct {
	p keystore.Module

	mu      sync.Mutex
	removed bool
	epoch   uint64                          // bumped by RemoveToken
	opened  map[pkcs11.SessionHandle]uint64 // epoch each session was opened in
	lose    int                             // operation calls still to fail
	loseRV  uint
	loginRV uint // the next C_Login's answer, 0 for none
	delay   time.Duration
	// writes: FailObjectWrites's selection and answer.
	writes   func(ObjectWrite) bool
	writesRV uint

	Logins   atomic.Int64 // C_Login calls
	Finds    atomic.Int64 // C_FindObjectsInit calls
	Signs    atomic.Int64 // C_Sign calls
	Decrypts atomic.Int64 // C_Decrypt calls
	Opened   atomic.Int64 // C_OpenSession calls that succeeded
	Closed   atomic.Int64 // C_CloseSession calls
	Injected atomic.Int64 // calls that got an injected failure
	Slowed   atomic.Int64 // calls past every fault check, held by SetDelay
}

// Open is keystore.Open with f between the Store and the module. f may be
// used for one Store only.
func Open(ctx context.Context, cfg keystore.Config, f *Faults) (*keystore.Store, error) {
	return keystore.OpenWith(ctx, cfg, func(p keystore.Module) keystore.Module {
		f.p = p
		f.opened = map[pkcs11.SessionHandle]uint64{}
		return f
	})
}

// LoseSessions makes the next n operation calls (C_Sign, C_Decrypt,
// C_FindObjectsInit) fail with rv, which should
// be CKR_SESSION_HANDLE_INVALID or CKR_SESSION_CLOSED: what a token answers
// for a session it dropped (an HSM restarted, a network HSM's connection
// reset).
func (f *Faults) LoseSessions(n int, rv uint) {
	f.mu.Lock()
	f.lose, f.loseRV = n, rv
	f.mu.Unlock()
}

// RemoveToken pulls the token out: session calls fail with
// CKR_DEVICE_REMOVED, C_GetTokenInfo with CKR_TOKEN_NOT_PRESENT, and the slot
// list no longer has it. Every session open now stays dead after
// InsertToken (CKR_SESSION_HANDLE_INVALID), as with a real device.
func (f *Faults) RemoveToken() {
	f.mu.Lock()
	f.removed = true
	f.epoch++
	f.mu.Unlock()
}

// InsertToken puts the token back.
func (f *Faults) InsertToken() {
	f.mu.Lock()
	f.removed = false
	f.mu.Unlock()
}

// FailLogin makes the next C_Login answer rv: CKR_PIN_INCORRECT,
// CKR_PIN_LOCKED, or CKR_USER_ALREADY_LOGGED_IN (then the real login runs
// first, so the process is logged in as that answer claims).
func (f *Faults) FailLogin(rv uint) {
	f.mu.Lock()
	f.loginRV = rv
	f.mu.Unlock()
}

// SetDelay makes every C_Sign and C_Decrypt take d longer (a slow or
// overloaded token).
func (f *Faults) SetDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

// session is the check every call on a session passes: a removed token, a
// session from before a removal.
func (f *Faults) session(sh pkcs11.SessionHandle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed {
		f.Injected.Add(1)
		return pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	}
	if ep, ok := f.opened[sh]; ok && ep < f.epoch {
		f.Injected.Add(1)
		return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	return nil
}

// operation is session plus LoseSessions.
func (f *Faults) operation(sh pkcs11.SessionHandle) error {
	if err := f.session(sh); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lose > 0 {
		f.lose--
		f.Injected.Add(1)
		return pkcs11.Error(f.loseRV)
	}
	return nil
}

func (f *Faults) slow() {
	f.mu.Lock()
	d := f.delay
	f.mu.Unlock()
	if d > 0 {
		f.Slowed.Add(1)
		time.Sleep(d)
	}
}

func (f *Faults) GetSlotList(tokenPresent bool) ([]uint, error) {
	f.mu.Lock()
	removed := f.removed
	f.mu.Unlock()
	if removed {
		return nil, nil
	}
	return f.p.GetSlotList(tokenPresent)
}

func (f *Faults) GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error) {
	f.mu.Lock()
	removed := f.removed
	f.mu.Unlock()
	if removed {
		f.Injected.Add(1)
		return pkcs11.TokenInfo{}, pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT)
	}
	return f.p.GetTokenInfo(slotID)
}

func (f *Faults) GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error) {
	return f.p.GetMechanismList(slotID)
}

func (f *Faults) InitToken(slotID uint, soPIN, label string) error {
	return f.p.InitToken(slotID, soPIN, label)
}

func (f *Faults) InitPIN(sh pkcs11.SessionHandle, pin string) error { return f.p.InitPIN(sh, pin) }

func (f *Faults) OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error) {
	f.mu.Lock()
	removed := f.removed
	f.mu.Unlock()
	if removed {
		f.Injected.Add(1)
		return 0, pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	}
	sh, err := f.p.OpenSession(slotID, flags)
	if err == nil {
		f.Opened.Add(1)
		f.mu.Lock()
		f.opened[sh] = f.epoch
		f.mu.Unlock()
	}
	return sh, err
}

func (f *Faults) CloseSession(sh pkcs11.SessionHandle) error {
	f.Closed.Add(1)
	if err := f.session(sh); err != nil {
		return err
	}
	return f.p.CloseSession(sh)
}

func (f *Faults) GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
	if err := f.session(sh); err != nil {
		return pkcs11.SessionInfo{}, err
	}
	return f.p.GetSessionInfo(sh)
}

func (f *Faults) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	f.Logins.Add(1)
	if err := f.session(sh); err != nil {
		return err
	}
	f.mu.Lock()
	rv := f.loginRV
	f.loginRV = 0
	f.mu.Unlock()
	switch rv {
	case 0:
		return f.p.Login(sh, userType, pin)
	case pkcs11.CKR_USER_ALREADY_LOGGED_IN:
		if err := f.p.Login(sh, userType, pin); err != nil {
			return err
		}
	}
	f.Injected.Add(1)
	return pkcs11.Error(rv)
}

func (f *Faults) Logout(sh pkcs11.SessionHandle) error {
	if err := f.session(sh); err != nil {
		return err
	}
	return f.p.Logout(sh)
}

func (f *Faults) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	f.Finds.Add(1)
	if err := f.operation(sh); err != nil {
		return err
	}
	return f.p.FindObjectsInit(sh, temp)
}

func (f *Faults) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	if err := f.session(sh); err != nil {
		return nil, false, err
	}
	return f.p.FindObjects(sh, max)
}

func (f *Faults) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	if err := f.session(sh); err != nil {
		return err
	}
	return f.p.FindObjectsFinal(sh)
}

func (f *Faults) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	if err := f.session(sh); err != nil {
		return nil, err
	}
	return f.p.GetAttributeValue(sh, o, a)
}

func (f *Faults) CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if err := f.session(sh); err != nil {
		return 0, err
	}
	if err := f.objectWrite(func() ObjectWrite { return describe(temp) }); err != nil {
		return 0, err
	}
	return f.p.CreateObject(sh, temp)
}

func (f *Faults) DestroyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) error {
	if err := f.session(sh); err != nil {
		return err
	}
	err := f.objectWrite(func() ObjectWrite {
		w := ObjectWrite{Destroy: true}
		if a, err := f.p.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, nil), pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)}); err == nil {
			w.Class, w.Label = ulong(a[0].Value), string(a[1].Value)
		}
		if w.Class == pkcs11.CKO_DATA {
			if a, err := f.p.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_APPLICATION, nil)}); err == nil {
				w.Application = string(a[0].Value)
			}
		}
		return w
	})
	if err != nil {
		return err
	}
	return f.p.DestroyObject(sh, o)
}

// ObjectWrite is a C_CreateObject or C_DestroyObject call as
// FailObjectWrites sees it: the object's class, label and (data objects)
// application, from the template of a create, read from the object for a
// destroy.
type ObjectWrite struct {
	Destroy     bool
	Class       uint
	Label       string
	Application string
}

// FailObjectWrites makes every C_CreateObject and C_DestroyObject that
// fail selects answer rv without reaching the module: a token that
// refuses a write (full, or failing), which SoftHSM never does by itself.
// A nil fail stops it.
func (f *Faults) FailObjectWrites(fail func(ObjectWrite) bool, rv uint) {
	f.mu.Lock()
	f.writes, f.writesRV = fail, rv
	f.mu.Unlock()
}

// objectWrite is FailObjectWrites's check; describe is called only while
// a selection is set.
func (f *Faults) objectWrite(describe func() ObjectWrite) error {
	f.mu.Lock()
	fail, rv := f.writes, f.writesRV
	f.mu.Unlock()
	if fail == nil || !fail(describe()) {
		return nil
	}
	f.Injected.Add(1)
	return pkcs11.Error(rv)
}

func describe(temp []*pkcs11.Attribute) ObjectWrite {
	var w ObjectWrite
	for _, a := range temp {
		switch a.Type {
		case pkcs11.CKA_CLASS:
			w.Class = ulong(a.Value)
		case pkcs11.CKA_LABEL:
			w.Label = string(a.Value)
		case pkcs11.CKA_APPLICATION:
			w.Application = string(a.Value)
		}
	}
	return w
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}

func (f *Faults) GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error) {
	if err := f.session(sh); err != nil {
		return 0, 0, err
	}
	return f.p.GenerateKeyPair(sh, m, public, private)
}

func (f *Faults) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := f.session(sh); err != nil {
		return err
	}
	return f.p.SignInit(sh, m, o)
}

func (f *Faults) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	f.Signs.Add(1)
	if err := f.operation(sh); err != nil {
		return nil, err
	}
	f.slow()
	return f.p.Sign(sh, message)
}

func (f *Faults) DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := f.session(sh); err != nil {
		return err
	}
	return f.p.DecryptInit(sh, m, o)
}

func (f *Faults) Decrypt(sh pkcs11.SessionHandle, ciphertext []byte) ([]byte, error) {
	f.Decrypts.Add(1)
	if err := f.operation(sh); err != nil {
		return nil, err
	}
	f.slow()
	return f.p.Decrypt(sh, ciphertext)
}
