package policy

import (
	"crypto"
	"testing"
)

// TestHashByName: the names a policy's `hashes:` may use, SHA-3 included
// (ETSI TS 119 312 recommends SHA3-256/384/512), with their identifiers.
func TestHashByName(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash crypto.Hash
		oid  string
	}{
		{"SHA256", crypto.SHA256, "2.16.840.1.101.3.4.2.1"},
		{"SHA384", crypto.SHA384, "2.16.840.1.101.3.4.2.2"},
		{"SHA512", crypto.SHA512, "2.16.840.1.101.3.4.2.3"},
		{"SHA3-256", crypto.SHA3_256, "2.16.840.1.101.3.4.2.8"},
		{"SHA3-384", crypto.SHA3_384, "2.16.840.1.101.3.4.2.9"},
		{"SHA3-512", crypto.SHA3_512, "2.16.840.1.101.3.4.2.10"},
		{"SHA1", 0, ""},
		{"sha3-256", 0, ""},
	} {
		h, ok := HashByName(tc.name)
		if h != tc.hash || ok != (tc.hash != 0) || HashOID(h) != tc.oid {
			t.Errorf("%s: %v %v %q", tc.name, h, ok, HashOID(h))
		}
	}
}
