package csr

import (
	"encoding/asn1"
	"testing"
)

// FuzzParseSubject: never panics; what it accepts encodes as DER and has
// between 1 and MaxRDNs single-valued RDNs.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"CN=Jana Nováková,O=Example s.r.o.,C=CZ", `CN=a\,b\2C\C4\8D`, "2.5.4.97=NTRCZ-1,CN=x", "CN=a+O=b", `CN=\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rdns, err := ParseSubject(s)
		if err != nil {
			return
		}
		if len(rdns) == 0 || len(rdns) > MaxRDNs {
			t.Fatalf("%d RDNs", len(rdns))
		}
		for _, r := range rdns {
			if len(r) != 1 {
				t.Fatalf("multi-valued RDN from %q", s)
			}
		}
		if _, err := asn1.Marshal(rdns); err != nil {
			t.Fatalf("accepted %q but cannot encode: %v", s, err)
		}
	})
}
