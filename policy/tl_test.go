package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

func readTL(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testtool.Vectors(t, "trusted-lists", name))
	if err != nil {
		t.Fatalf("trusted list vectors missing: %v", err)
	}
	return b
}

// czSigners gives the CZ list's signer certificate, checked against the EU
// list of lists, which publishes it: that is how an operator configures it.
func czSigners(t testing.TB) []byte {
	data := readTL(t, "CZ.xml")
	certs, err := TrustedListSigners(data)
	if err != nil || len(certs) == 0 {
		t.Fatalf("no signer in CZ.xml: %v", err)
	}
	lotl := readTL(t, "eu-lotl.xml")
	b64 := base64.StdEncoding.EncodeToString(certs[0].Raw)
	if !bytes.Contains(bytes.Join(bytes.Fields(lotl), nil), []byte(b64)) {
		t.Fatalf("the CZ signer certificate is not published in the EU list of lists")
	}
	return certs[0].Raw
}

func TestTrustedListCZ(t *testing.T) {
	data := readTL(t, "CZ.xml")
	signer := mustCert(t, czSigners(t))
	l, err := LoadTrustedList(data, []*x509.Certificate{signer})
	if err != nil {
		t.Fatal(err)
	}
	if l.Territory != "CZ" || l.SequenceNumber != "77" {
		t.Errorf("territory %q sequence %q", l.Territory, l.SequenceNumber)
	}
	anchors := l.AnchorsAt(time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC))
	var names []string
	for _, a := range anchors {
		names = append(names, a.Service)
	}
	all := strings.Join(names, "\n")
	for _, want := range []string{"PostSignum", "I.CA", "eIdentity"} {
		if !strings.Contains(all, want) {
			t.Errorf("no granted CA/QC anchor of %s in:\n%s", want, all)
		}
	}
	// Before eIDAS and the first services, fewer anchors hold.
	if old := l.AnchorsAt(time.Date(2003, 1, 1, 0, 0, 0, 0, time.UTC)); len(old) >= len(anchors) {
		t.Errorf("%d anchors in 2003, %d in 2019: history not applied", len(old), len(anchors))
	}
}

func TestTrustedListRefused(t *testing.T) {
	signer := mustCert(t, czSigners(t))
	good := readTL(t, "CZ.xml")
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"broken signature", readTL(t, "CZ_broken-sig.xml"), ErrTrustedListSig},
		{"one byte changed", bytes.Replace(good, []byte("PostSignum"), []byte("PostSignun"), 1), ErrTrustedListSig},
		{"doctype bomb", []byte(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#">&lol2;</TrustServiceStatusList>`), ErrMalformedXML},
		{"deep nesting", []byte(strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000)), ErrMalformedXML},
		{"200 MB", make([]byte, 200<<20), ErrTrustedListTooLarge},
		{"not XML", []byte("\x00\x01garbage"), ErrMalformedXML},
		{"other document", []byte(`<x/>`), ErrTrustedList},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTrustedList(tc.data, []*x509.Certificate{signer})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestTrustedListExpired: a path to an anchor of a trusted list past its
// NextUpdate (plus the policy's grace) is INDETERMINATE with
// TRUSTED_LIST_EXPIRED; before it, and for PEM anchors, nothing changes.
func TestTrustedListExpired(t *testing.T) {
	root := issue(t, nil, tmpl("TL root", true), nil)
	leaf := issue(t, root, tmpl("TL leaf", false), nil)
	pemRoot := issue(t, nil, tmpl("PEM root", true), nil)
	pemLeaf := issue(t, pemRoot, tmpl("PEM leaf", false), nil)
	list := &TrustedList{Territory: "XX", SequenceNumber: "7", NextUpdate: testNow,
		Services: []TrustService{{Provider: "P", Name: "S", Type: svcCAQC, Certs: []*x509.Certificate{root.cert},
			History: []ServiceStatus{{Status: grantedStatuses[0], Start: testNow.AddDate(-5, 0, 0)}}}}}
	tests := []struct {
		name  string
		now   time.Time
		grace time.Duration
		leaf  *x509.Certificate
		want  Status
	}{
		{"before NextUpdate", testNow.Add(-time.Hour), 0, leaf.cert, Valid},
		{"past NextUpdate", testNow.Add(time.Hour), 0, leaf.cert, Indeterminate},
		{"within grace", testNow.Add(time.Hour), 2 * time.Hour, leaf.cert, Valid},
		{"past grace", testNow.Add(3 * time.Hour), 2 * time.Hour, leaf.cert, Indeterminate},
		{"PEM anchor, list past NextUpdate", testNow.Add(time.Hour), 0, pemLeaf.cert, Valid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine("p", &Policy{Name: "p", Anchors: []*x509.Certificate{pemRoot.cert}, TrustedList: list, TrustedListGrace: tc.grace, Revocation: RevocationOff})
			if err != nil {
				t.Fatal(err)
			}
			e.Now = func() time.Time { return tc.now }
			v := e.Validate(Request{Leaf: tc.leaf, At: testNow.Add(-time.Hour)})
			if v.Status != tc.want {
				t.Fatalf("%s %v, want %s", v.Status, v.Reasons, tc.want)
			}
			if tc.want == Indeterminate && (len(v.Reasons) != 1 || v.Reasons[0].Code != CodeTrustedListExpired || !strings.Contains(v.Reasons[0].Message, "sequence 7")) {
				t.Fatalf("reasons %v", v.Reasons)
			}
		})
	}
}
