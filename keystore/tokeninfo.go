package keystore

import (
	"strings"

	"github.com/miekg/pkcs11"
)

// TokenInfo says which token Open chose, for the start-up log line an
// operator reads to see that the configuration selected the HSM partition
// they meant.
type TokenInfo struct {
	Slot         uint
	Label        string
	Serial       string
	Manufacturer string
	Model        string
	// Sessions is the session pool's size: Config.MaxSessions, lowered to
	// what the token allows (its maximum read-write sessions less the login
	// session) when it says.
	Sessions int
}

func tokenInfoOf(slot uint, ti pkcs11.TokenInfo, sessions int) TokenInfo {
	// CK_TOKEN_INFO strings are blank-padded fixed-width fields.
	trim := func(s string) string { return strings.TrimRight(s, " \x00") }
	return TokenInfo{
		Slot:         slot,
		Label:        trim(ti.Label),
		Serial:       trim(ti.SerialNumber),
		Manufacturer: trim(ti.ManufacturerID),
		Model:        trim(ti.Model),
		Sessions:     sessions,
	}
}

// Token describes the token Open chose. Label and serial stay; the slot id
// is the one found at Open (a token that comes back may get another).
func (s *Store) Token() TokenInfo { return s.info }
