package keystore

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/miekg/pkcs11"
)

// App states are small values the server keeps on the token because a file
// next to the data they describe could be rolled back with it: the audit
// log's last signed checkpoint (internal/audit, docs/security.md "Audit
// log"). The keystore neither reads nor judges them; their objects are in
// the layout of "Keys on the token" in the package doc (doc.go).
//
// Tokens may refuse to modify a data object (SoftHSM 2.6 does), so PutAppState
// creates the new value and then destroys the old ones; a crash between the
// two leaves both, and GetAppState returns every value under the name for the
// caller to pick the newest (its values say which).
const appStateApp = "pecet-state"

// MaxAppStateBytes bounds one stored state (token storage is small and shared).
const MaxAppStateBytes = 1024

// ErrInvalidAppState: a name outside [a-z0-9-]{1,64}, or a value that is empty
// or larger than MaxAppStateBytes.
var ErrInvalidAppState = errors.New("keystore: invalid app state name or value")

var appStateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func appStateTemplate(name string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, appStateApp), attr(pkcs11.CKA_LABEL, name)}
}

// PutAppState replaces the value stored under name (one session, briefly).
func (s *Store) PutAppState(ctx context.Context, name string, value []byte) error {
	if !appStateNameRE.MatchString(name) || len(value) == 0 || len(value) > MaxAppStateBytes {
		return fmt.Errorf("%w: %q, %d bytes (1 to %d)", ErrInvalidAppState, name, len(value), MaxAppStateBytes)
	}
	return s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		old, err := findObjects(s.p, sh, appStateTemplate(name))
		if err != nil {
			return err
		}
		if _, err := s.p.CreateObject(sh, append(appStateTemplate(name),
			attr(pkcs11.CKA_TOKEN, true),
			attr(pkcs11.CKA_PRIVATE, true),
			attr(pkcs11.CKA_VALUE, value))); err != nil {
			return p11Error("C_CreateObject(state)", err)
		}
		for _, h := range old {
			if err := s.p.DestroyObject(sh, h); err != nil && !rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
				return p11Error("C_DestroyObject(state)", err)
			}
		}
		return nil
	})
}

// GetAppState returns every value stored under name, always read from the
// token: none when nothing is stored, more than one after a crash inside
// PutAppState.
func (s *Store) GetAppState(ctx context.Context, name string) ([][]byte, error) {
	if !appStateNameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidAppState, name)
	}
	var out [][]byte
	err := s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		out = nil
		hs, err := findObjects(s.p, sh, appStateTemplate(name))
		if err != nil {
			return err
		}
		for _, h := range hs {
			v, err := getAttrs(s.p, sh, h, pkcs11.CKA_VALUE)
			if err != nil {
				if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
					continue // replaced by another process meanwhile
				}
				return err
			}
			out = append(out, v[0])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
