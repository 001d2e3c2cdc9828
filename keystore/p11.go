package keystore

import (
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Module lists the PKCS#11 calls the keystore makes, and nothing more. It
// is implemented by *pkcs11.Ctx. Keeping it narrow (as boulder's
// pkcs11helpers.PKCtx does) lets a test or a fault-injecting wrapper sit
// between the Store and the module (OpenWith; the token faults of the
// tests and the soak are internal/faultinject): count logins, lose
// sessions, pull the token. C_Initialize/C_Finalize are not here: they
// belong to the process-wide module registry (module.go), never to one
// Store.
type Module interface {
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error)
	InitToken(slotID uint, soPIN, label string) error
	InitPIN(sh pkcs11.SessionHandle, pin string) error

	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	Logout(sh pkcs11.SessionHandle) error

	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	CreateObject(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) (pkcs11.ObjectHandle, error)
	DestroyObject(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) error
	GenerateKeyPair(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, public, private []*pkcs11.Attribute) (pkcs11.ObjectHandle, pkcs11.ObjectHandle, error)

	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	DecryptInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Decrypt(sh pkcs11.SessionHandle, ciphertext []byte) ([]byte, error)
}

// p11 is the package's own name for Module.
type p11 = Module

var _ Module = (*pkcs11.Ctx)(nil)

// rvIs reports whether err carries one of the PKCS#11 return values.
func rvIs(err error, rvs ...uint) bool {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, rv := range rvs {
		if uint(e) == rv {
			return true
		}
	}
	return false
}

// sessionLost: this session is gone but the token may be fine; a fresh
// session can repeat the operation.
func sessionLost(err error) bool {
	return rvIs(err, pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED)
}

// tokenGone: the device itself went away; retrying on this slot is pointless.
func tokenGone(err error) bool {
	return rvIs(err, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED)
}

// p11Error wraps a PKCS#11 failure of one call with the call's name, mapping
// the token-gone return values to ErrTokenUnavailable.
func p11Error(call string, err error) error {
	if err == nil {
		return nil
	}
	if tokenGone(err) {
		return fmt.Errorf("%w: %s: %w", ErrTokenUnavailable, call, err)
	}
	return fmt.Errorf("keystore: %s: %w", call, err)
}
