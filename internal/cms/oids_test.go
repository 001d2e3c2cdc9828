package cms

import (
	"encoding/asn1"
	"testing"
)

// allOIDs are the constants of oids.go; a new constant is added here.
var allOIDs = []OID{OIDData, OIDAttrSigningCertificate, OIDAttrSigningCertificateV2,
	OIDMD5, OIDSHA1, OIDSHA224, OIDSHA256, OIDSHA384, OIDSHA512, OIDRSAEncryption, OIDMGF1}

// TestOIDConstants: every constant is well-formed (ASN1 would panic on a
// bad one), round-trips, matches itself with Is and is defined once.
func TestOIDConstants(t *testing.T) {
	seen := map[OID]bool{}
	for _, o := range allOIDs {
		if seen[o] {
			t.Errorf("%s defined twice", o)
		}
		seen[o] = true
		id := o.ASN1()
		if id.String() != string(o) || !Is(id, o) {
			t.Errorf("%s: ASN1 %v, Is %v", o, id, Is(id, o))
		}
	}
}

func TestIs(t *testing.T) {
	tests := []struct {
		name string
		id   asn1.ObjectIdentifier
		o    OID
		want bool
	}{
		{"equal", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, OIDSHA256, true},
		{"other arc", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, OIDSHA256, false},
		{"prefix of the constant", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2}, OIDSHA256, false},
		{"constant is a prefix", asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1, 0}, OIDSHA256, false},
		{"arc 10 against 1", asn1.ObjectIdentifier{1, 3, 14, 3, 2, 260}, OIDSHA1, false},
		{"empty", nil, OIDSHA1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Is(tt.id, tt.o); got != tt.want {
				t.Errorf("Is(%v, %s) = %v, want %v", tt.id, tt.o, got, tt.want)
			}
		})
	}
}
