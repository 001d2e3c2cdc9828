package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestTimestampVerifyOutsideTSA: `pecet timestamp verify` judges tokens of
// a TSA that is not pecet with the policy engine, as OpenSSL does
// (docs/tsa.md "Verification"): an issuing CA whose EKU lacks timeStamping constrains
// nothing (RFC 5280 has no EKU nesting; RFC 3161 2.3 asks it of the TSA
// certificate alone), with the root or the issuing CA as anchor.
func TestTimestampVerifyOutsideTSA(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "filing.xml")
	if err := os.WriteFile(data, []byte("<PRIHL/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    testtool.OutsideTSAOptions
	}{
		{"issuing CA without EKU, chain in token", testtool.OutsideTSAOptions{ChainInToken: true}},
		{"issuing CA EKU lacks timeStamping, chain in token", testtool.OutsideTSAOptions{IssuingEKU: "emailProtection,clientAuth", ChainInToken: true}},
		{"issuing CA EKU lacks timeStamping, TSA certificate only", testtool.OutsideTSAOptions{IssuingEKU: "emailProtection,clientAuth"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := testtool.NewOutsideTSA(t, tc.o)
			tsr := ts.Reply(t, data)
			anchors := map[string]string{"issuing CA": ts.IssuingPEM}
			if tc.o.ChainInToken {
				anchors["root"] = ts.RootPEM
			}
			for name, a := range anchors {
				if name == "issuing CA" {
					testtool.RunOpenSSL(t, "ts", "-verify", "-in", tsr, "-data", data, "-CAfile", a, "-partial_chain")
				} else {
					testtool.RunOpenSSL(t, "ts", "-verify", "-in", tsr, "-data", data, "-CAfile", a)
				}
				if code := runTimestampVerify([]string{"--in", tsr, "--data", data, "--anchors", a, "--dev-dir", dir}); code != exitOK {
					t.Errorf("anchor %s: exit %d, want %d (VALID)", name, code, exitOK)
				}
			}
		})
	}
}

// stdoutOf runs f with os.Stdout captured.
func stdoutOf(t *testing.T, f func() int) (string, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	code := f()
	os.Stdout = old
	w.Close()
	return string(<-done), code
}

// TestTimestampVerifyBareToken: a token is checked without its data
// (signature, chain, genTime) and the imprint it covers is reported
// (docs/tsa.md "Verification"); with the data the imprint is compared as before.
func TestTimestampVerifyBareToken(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "filing.xml")
	if err := os.WriteFile(data, []byte("<PRIHL/>"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("<PRIHL/>"))
	ts := testtool.NewOutsideTSA(t, testtool.OutsideTSAOptions{ChainInToken: true})
	tsr := ts.Reply(t, data)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"token alone", []string{"--in", tsr, "--anchors", ts.RootPEM}, exitOK, []string{"VALID", "imprint:       SHA-256 " + hex.EncodeToString(sum[:]) + " (not compared"}},
		{"token alone, JSON", []string{"--in", tsr, "--anchors", ts.RootPEM, "--json"}, exitOK, []string{`"digest": "` + hex.EncodeToString(sum[:]) + `"`, `"checked": false`}},
		{"token alone, untrusted", []string{"--in", tsr, "--anchors", ts.TSAPEM + ".none"}, exitUsage, nil},
		{"with the data", []string{"--in", tsr, "--anchors", ts.RootPEM, "--data", data}, exitOK, []string{"VALID"}},
		{"both data and digest", []string{"--in", tsr, "--data", data, "--digest", hex.EncodeToString(sum[:])}, exitUsage, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := stdoutOf(t, func() int { return runTimestampVerify(append(tc.args, "--dev-dir", dir)) })
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.code == exitOK && !strings.Contains(strings.Join(tc.args, " "), "--data") && strings.Contains(out, "VALID") && !strings.Contains(out, "imprint") {
				t.Errorf("a token checked alone must say which imprint it covers:\n%s", out)
			}
		})
	}
}
