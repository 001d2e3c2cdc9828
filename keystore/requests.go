package keystore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/miekg/pkcs11"
)

// Pending requests are small opaque documents the server keeps on the token
// so that every replica sharing it sees them (dual control: one officer asks,
// another approves, possibly through another pecetd). The keystore neither
// reads nor judges them; it stores bytes under an id, in the objects that
// "Keys on the token" in the package doc (doc.go) lays out.
const requestApp = "pecet-request"

// MaxRequestBytes bounds one stored request: requests are a few hundred
// bytes of JSON, an import-certificate request carries a chain (up to 8
// certificates, base64), and token storage is small and shared.
const MaxRequestBytes = 64 << 10

// Errors of the request store.
var (
	// ErrRequestNotFound: no pending request with that id (never made,
	// approved already, or removed).
	ErrRequestNotFound = errors.New("keystore: request not found")
	// ErrInvalidRequest: an id outside [a-z0-9-]{1,64}, or a value that is
	// empty or larger than MaxRequestBytes.
	ErrInvalidRequest = errors.New("keystore: invalid request id or value")
)

var requestIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// Request is one stored request.
type Request struct {
	ID    string
	Value []byte
}

func checkRequest(id string, value []byte, needValue bool) error {
	if !requestIDRE.MatchString(id) {
		return fmt.Errorf("%w: id %q", ErrInvalidRequest, id)
	}
	if needValue && (len(value) == 0 || len(value) > MaxRequestBytes) {
		return fmt.Errorf("%w: %d-byte value (1 to %d)", ErrInvalidRequest, len(value), MaxRequestBytes)
	}
	return nil
}

func requestTemplate(id string) []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, requestApp)}
	if id != "" {
		t = append(t, attr(pkcs11.CKA_LABEL, id))
	}
	return t
}

// PutRequest stores value under a new id. An id already present is refused
// (ErrInvalidRequest): ids are random and never reused.
func (s *Store) PutRequest(ctx context.Context, id string, value []byte) error {
	if err := checkRequest(id, value, true); err != nil {
		return err
	}
	return s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		hs, err := findObjects(s.p, sh, requestTemplate(id))
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			return fmt.Errorf("%w: id %q exists", ErrInvalidRequest, id)
		}
		_, err = s.p.CreateObject(sh, append(requestTemplate(id),
			attr(pkcs11.CKA_TOKEN, true),
			attr(pkcs11.CKA_PRIVATE, true),
			attr(pkcs11.CKA_VALUE, value)))
		return p11Error("C_CreateObject(request)", err)
	})
}

// GetRequest reads one request, always from the token.
func (s *Store) GetRequest(ctx context.Context, id string) ([]byte, error) {
	if err := checkRequest(id, nil, false); err != nil {
		return nil, err
	}
	var out []byte
	err := s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		hs, err := findObjects(s.p, sh, requestTemplate(id))
		if err != nil {
			return err
		}
		if len(hs) == 0 {
			return fmt.Errorf("%w: %q", ErrRequestNotFound, id)
		}
		v, err := getAttrs(s.p, sh, hs[0], pkcs11.CKA_VALUE)
		if err != nil {
			return err
		}
		out = v[0]
		return nil
	})
	if err != nil {
		return nil, err // out may still be written by an abandoned call
	}
	return out, nil
}

// ListRequests returns every stored request, ordered by id, always read
// from the token (another process may have added or removed one).
func (s *Store) ListRequests(ctx context.Context) ([]Request, error) {
	var out []Request
	err := s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		out = nil
		hs, err := findObjects(s.p, sh, requestTemplate(""))
		if err != nil {
			return err
		}
		for _, h := range hs {
			v, err := getAttrs(s.p, sh, h, pkcs11.CKA_LABEL, pkcs11.CKA_VALUE)
			if err != nil {
				if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
					continue // deleted by another process meanwhile
				}
				return err
			}
			if requestIDRE.MatchString(string(v[0])) {
				out = append(out, Request{ID: string(v[0]), Value: v[1]})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err // out may still be written by an abandoned call
	}
	slices.SortFunc(out, func(a, b Request) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteRequest removes a request. It is how a replica claims one: of two
// processes deleting the same request at once, at most one succeeds, and
// the other gets ErrRequestNotFound.
func (s *Store) DeleteRequest(ctx context.Context, id string) error {
	if err := checkRequest(id, nil, false); err != nil {
		return err
	}
	return s.withSession(ctx, func(sh pkcs11.SessionHandle) error {
		hs, err := findObjects(s.p, sh, requestTemplate(id))
		if err != nil {
			return err
		}
		if len(hs) == 0 {
			return fmt.Errorf("%w: %q", ErrRequestNotFound, id)
		}
		for _, h := range hs {
			if err := s.p.DestroyObject(sh, h); err != nil {
				if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
					return fmt.Errorf("%w: %q (claimed by another process)", ErrRequestNotFound, id)
				}
				return p11Error("C_DestroyObject(request)", err)
			}
		}
		return nil
	})
}
