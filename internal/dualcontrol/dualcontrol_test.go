package dualcontrol

import (
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
