package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrPKCS11URI wraps every problem with a token.uri.
var ErrPKCS11URI = errors.New("config: invalid pkcs11: URI")

// maxPKCS11URI bounds what ParsePKCS11URI reads: a token URI is a few
// attributes, and the parser must stay cheap on whatever is thrown at it.
const maxPKCS11URI = 4096

// PKCS11URI is the token-selecting part of an RFC 7512 "pkcs11:" URI: the
// attributes pecet uses to find a token, its module and its PIN file.
// Object attributes (object, id, type) are refused: pecet names keys by
// alias and version, not by URI.
type PKCS11URI struct {
	Token  string // "token": the token label (CK_TOKEN_INFO.label)
	Serial string // "serial": the token serial number
	SlotID *uint  // "slot-id" (RFC 7512 errata / p11-kit): unstable on some HSMs, prefer token or serial
	// ModulePath is the "module-path" query attribute: the PKCS#11 library.
	ModulePath string
	// PINSource is the "pin-source" query attribute: a file holding the PIN
	// ("file:" scheme or a plain absolute path).
	PINSource string
}

// ParsePKCS11URI parses an RFC 7512 pkcs11: URI that selects a token, e.g.
// "pkcs11:token=pecet;serial=4f2a9c1d?pin-source=file:/etc/pecet/pin".
// Attribute values are percent-decoded; each attribute may appear once.
// "pin-value" is refused (a PIN never sits in configuration), and so are
// attributes pecet would otherwise silently ignore, so that a URI copied
// from another tool cannot select a different token than its author meant.
func ParsePKCS11URI(s string) (PKCS11URI, error) {
	var u PKCS11URI
	if len(s) > maxPKCS11URI {
		return u, fmt.Errorf("%w: longer than %d bytes", ErrPKCS11URI, maxPKCS11URI)
	}
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return u, fmt.Errorf("%w: it must start with \"pkcs11:\"", ErrPKCS11URI)
	}
	path, query, _ := strings.Cut(rest, "?")
	seen := map[string]bool{}
	attrs := func(part, sep string, isQuery bool) error {
		if part == "" {
			return nil
		}
		for attr := range strings.SplitSeq(part, sep) {
			name, raw, ok := strings.Cut(attr, "=")
			if !ok || name == "" {
				return fmt.Errorf("%w: attribute %q is not name=value", ErrPKCS11URI, clip(attr))
			}
			if seen[name] {
				return fmt.Errorf("%w: attribute %q appears twice", ErrPKCS11URI, clip(name))
			}
			seen[name] = true
			val, err := url.PathUnescape(raw)
			if err != nil {
				return fmt.Errorf("%w: attribute %s: bad percent-encoding", ErrPKCS11URI, clip(name))
			}
			if strings.ContainsFunc(val, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return fmt.Errorf("%w: attribute %s holds a control character", ErrPKCS11URI, clip(name))
			}
			if err := u.set(name, val, isQuery); err != nil {
				return err
			}
		}
		return nil
	}
	if err := attrs(path, ";", false); err != nil {
		return PKCS11URI{}, err
	}
	if err := attrs(query, "&", true); err != nil {
		return PKCS11URI{}, err
	}
	if u.Token == "" && u.Serial == "" && u.SlotID == nil {
		return PKCS11URI{}, fmt.Errorf("%w: it names no token (give token=, serial= or slot-id=)", ErrPKCS11URI)
	}
	return u, nil
}

func (u *PKCS11URI) set(name, val string, isQuery bool) error {
	where, other := "path", "query (after ?)"
	if isQuery {
		where, other = "query", "path (before ?)"
	}
	wrongPart := func() error {
		return fmt.Errorf("%w: %s belongs in the URI's %s", ErrPKCS11URI, name, other)
	}
	switch name {
	case "token", "serial", "slot-id":
		if isQuery {
			return wrongPart()
		}
		if val == "" {
			return fmt.Errorf("%w: %s is empty", ErrPKCS11URI, name)
		}
	case "module-path", "pin-source":
		if !isQuery {
			return wrongPart()
		}
	}
	switch name {
	case "token":
		if len(val) > 32 { // CK_TOKEN_INFO.label is 32 bytes
			return fmt.Errorf("%w: token label longer than 32 bytes", ErrPKCS11URI)
		}
		u.Token = val
	case "serial":
		if len(val) > 16 { // CK_TOKEN_INFO.serialNumber is 16 bytes
			return fmt.Errorf("%w: serial longer than 16 bytes", ErrPKCS11URI)
		}
		u.Serial = val
	case "slot-id":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return fmt.Errorf("%w: slot-id %q is not a decimal number", ErrPKCS11URI, clip(val))
		}
		id := uint(n)
		u.SlotID = &id
	case "module-path":
		if val == "" {
			return fmt.Errorf("%w: module-path is empty", ErrPKCS11URI)
		}
		u.ModulePath = val
	case "pin-source":
		p := strings.TrimPrefix(val, "file:")
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("%w: pin-source must be an absolute file path (file:/… or /…)", ErrPKCS11URI)
		}
		u.PINSource = p
	case "pin-value":
		return fmt.Errorf("%w: pin-value puts the PIN in the configuration; use pin-source, token.pin_file or token.pin_env", ErrPKCS11URI)
	case "module-name":
		return fmt.Errorf("%w: module-name needs p11-kit's module registry; give module-path or token.module", ErrPKCS11URI)
	case "object", "id", "type":
		return fmt.Errorf("%w: %s names a key object; pecet selects keys by alias, the URI only selects the token", ErrPKCS11URI, name)
	default:
		if strings.HasPrefix(name, "x-") {
			// RFC 7512 section 2.3: vendor attributes a consumer does not
			// understand are ignored.
			return nil
		}
		return fmt.Errorf("%w: %s attribute %q is not supported (token, serial, slot-id; module-path, pin-source)", ErrPKCS11URI, where, clip(name))
	}
	return nil
}

// clip keeps error messages short whatever the input was.
func clip(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "…"
	}
	return s
}
