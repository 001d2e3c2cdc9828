package dualcontrol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestApprovalRules(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	r, err := New("destroy", "cssz-decrypt", "alice", now, time.Hour)
	if err != nil || len(r.ID) != 16 {
		t.Fatal(r, err)
	}
	b, _ := r.Marshal()
	r2, err := Parse(b)
	if err != nil || !reflect.DeepEqual(r2, r) {
		t.Fatalf("round trip: %+v %v", r2, err)
	}
	cases := []struct {
		who  string
		at   time.Time
		want error
	}{
		{"bob", now.Add(time.Minute), nil},
		{"alice", now.Add(time.Minute), ErrSelfApproval},
		{"bob", now.Add(time.Hour), ErrExpired},
		{"alice", now.Add(2 * time.Hour), ErrExpired},
	}
	for _, c := range cases {
		if err := r.CheckApproval(c.who, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s at %s: %v, want %v", c.who, c.at, err, c.want)
		}
	}
	for _, bad := range []string{"", "{}", `{"format":2,"id":"x","op":"destroy","alias":"a","by":"b"}`, "[1]"} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v", bad, err)
		}
	}
}

// FuzzParse: a stored request read back from the token (at most
// keystore.MaxRequestBytes) never panics Parse, and what Parse accepts
// encodes and parses to the same request.
func FuzzParse(f *testing.F) {
	r, _ := New("import-certificate", "cssz-sign", "alice", time.Unix(1700000000, 0), time.Hour)
	r.Version, r.Chain, r.CertSHA256 = 2, [][]byte{{0x30, 0x03, 0x02, 0x01, 0x01}}, "ab"
	b, _ := r.Marshal()
	f.Add(b)
	f.Add([]byte(`{"format":1,"id":"x","op":"create","alias":"a","by":"b","chain":["AA=="]}`))
	f.Add([]byte(`{"format":1,"id":"x","op":"create","alias":"a","by":"b","chain":[],"created":"2020-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		r, err := Parse(b)
		if err != nil {
			return
		}
		b2, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Parse(b2)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if b3, _ := r2.Marshal(); !bytes.Equal(b2, b3) {
			t.Fatalf("round trip:\n%s\n%s", b2, b3)
		}
	})
}
