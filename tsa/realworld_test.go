package tsa

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/big"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
)

// recordedResponses reads the byte-slice variables of
// github.com/digitorus/timestamp's own test file (BSD-2-Clause) from
// the module cache: responses of GlobalSign's production TSAs recorded in
// 2017. They are read where `go mod download` put them, never copied into
// this repository (docs/realworld.md). The test skips only when `go list`
// cannot locate the module.
func recordedResponses(t *testing.T) map[string][]byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/digitorus/timestamp").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skipf("go list cannot locate github.com/digitorus/timestamp (%v); run go mod download", err)
	}
	file := filepath.Join(dir, "timestamp_test.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	vars := map[string][]byte{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var b []byte
		for _, e := range lit.Elts {
			bl, ok := e.(*ast.BasicLit)
			if !ok {
				return true // not a byte slice
			}
			v, err := strconv.ParseUint(bl.Value, 0, 8)
			if err != nil {
				return true
			}
			b = append(b, byte(v))
		}
		vars[vs.Names[0].Name] = b
		return true
	})
	for _, name := range []string{"hashedMessage", "respNonce", "respNoNonce", "respNoCert", "timeStampToken"} {
		if len(vars[name]) == 0 {
			t.Fatalf("%s: no byte slice %s (the module's tests changed: update docs/realworld.md and this test)", file, name)
		}
	}
	return vars
}

// TestRecordedTSAResponses judges real TSAs' tokens: GlobalSign's TSA for
// Adobe CDS (with certificates and a nonce, without a nonce, and without
// certificates, its TSA certificate then out of band from another of its
// responses) and its AATL TSA (a bare token). The issuing CA is the anchor (the
// roots are not in the responses); the TSA certificates expired in 2022,
// so at the genTime the tokens are VALID and now they prove nothing
// without an earlier proof of existence (OUT_OF_BOUNDS_NO_POE). OpenSSL
// agrees on the first.
func TestRecordedTSAResponses(t *testing.T) {
	vars := recordedResponses(t)
	digest := vars["hashedMessage"]
	tokenOf := func(name string) []byte {
		r, err := ParseResponse(vars[name])
		if err != nil || r.Token == nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r.Token
	}
	tokens := map[string][]byte{
		"respNonce": tokenOf("respNonce"), "respNoNonce": tokenOf("respNoNonce"),
		"respNoCert": tokenOf("respNoCert"), "timeStampToken": vars["timeStampToken"],
	}
	certsOf := func(name string) []*x509.Certificate {
		sd, err := signer.Parse(tokens[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return sd.Certificates
	}
	adobe := certsOf("respNonce")     // TSA, GlobalSign Primary SHA256 CA for Adobe
	aatl := certsOf("timeStampToken") // TSA, GlobalSign CA for AATL - SHA256 - G2
	if len(adobe) != 2 || len(aatl) != 2 || !adobe[1].IsCA || !aatl[1].IsCA {
		t.Fatalf("unexpected certificates: %d and %d", len(adobe), len(aatl))
	}
	bareDigest := []byte{0x2d, 0xa8, 0x2c, 0x15, 0x72, 0xff, 0x2, 0x5, 0x24, 0xe0, 0x50, 0x69, 0x21, 0x99, 0x75, 0xc9, 0xba, 0x90, 0x72, 0x3f, 0x1a, 0x4d, 0xd5, 0xb9, 0x72, 0x2a, 0xee, 0x8e, 0xc5, 0x47, 0xa2, 0xff}
	nonce := new(big.Int).SetBytes([]byte{0x9, 0x2e, 0xf1, 0x9f, 0xfb, 0x5d, 0x2a, 0xe8})

	type tc struct {
		name    string
		token   string
		anchor  *x509.Certificate // nil: no validator
		tsa     []*x509.Certificate
		digest  []byte
		nonce   *big.Int
		now     bool // judge now instead of at the genTime
		status  policy.Status
		reasons []policy.Code // exactly these
	}
	tests := []tc{
		{"Adobe TSA, nonce, at genTime", "respNonce", adobe[1], nil, digest, nonce, false, policy.Valid, nil},
		{"Adobe TSA, no nonce, at genTime", "respNoNonce", adobe[1], nil, digest, nil, false, policy.Valid, nil},
		{"Adobe TSA, now: certificate expired", "respNonce", adobe[1], nil, digest, nonce, true, policy.Indeterminate, []policy.Code{CodeOutOfBoundsNoPOE}},
		{"Adobe TSA, no anchors", "respNonce", nil, nil, digest, nonce, false, policy.Indeterminate, []policy.Code{policy.CodeUntrustedRoot}},
		{"Adobe TSA, other anchor", "respNonce", aatl[1], nil, digest, nonce, false, policy.Indeterminate, []policy.Code{policy.CodeUntrustedRoot}},
		{"Adobe TSA, wrong nonce", "respNonce", adobe[1], nil, digest, big.NewInt(1), false, policy.Invalid, []policy.Code{CodeNonceMismatch}},
		{"Adobe TSA, wrong digest", "respNonce", adobe[1], nil, bareDigest, nonce, false, policy.Invalid, []policy.Code{policy.CodeDigestMismatch}},
		{"AATL TSA, bare token, at genTime", "timeStampToken", aatl[1], nil, bareDigest, nil, false, policy.Valid, nil},
		{"Adobe TSA, no certificates", "respNoCert", adobe[1], nil, digest, nil, false, policy.Indeterminate, []policy.Code{policy.CodeSignerNotFound}},
		{"Adobe TSA, no certificates, TSA certificate out of band", "respNoCert", adobe[1], adobe[:1], digest, nil, false, policy.Valid, nil},
		{"Adobe TSA, no certificates, another TSA's certificate", "respNoCert", adobe[1], aatl[:1], digest, nil, false, policy.Indeterminate, []policy.Code{policy.CodeSignerNotFound}},
	}
	for _, c := range tests {
		t.Run(c.name, func(t *testing.T) {
			info, err := ParseToken(tokens[c.token])
			if err != nil {
				t.Fatal(err)
			}
			opts := VerifyOptions{Digest: c.digest, Nonce: c.nonce, TSACertificates: c.tsa, At: info.GenTime}
			if c.now {
				opts.At = time.Time{}
			}
			if c.anchor != nil {
				opts.Validator = engineFor(t, policy.RevocationOff, nil, c.anchor)
			}
			_, v, err := Verify(tokens[c.token], opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []policy.Code
			for _, r := range v.Reasons {
				got = append(got, r.Code)
			}
			if v.Status != c.status || fmt.Sprint(got) != fmt.Sprint(c.reasons) {
				t.Fatalf("got %s %v, want %s %v", v.Status, v.Reasons, c.status, c.reasons)
			}
		})
	}

	t.Run("OpenSSL agrees", func(t *testing.T) {
		testtool.OpenSSL(t)
		dir := t.TempDir()
		info, _ := ParseToken(tokens["respNonce"])
		resp := writeFile(t, dir, "r.tsr", vars["respNonce"])
		ca := writeFile(t, dir, "ca.pem", certPEM(adobe[1]))
		at := strconv.FormatInt(info.GenTime.Unix(), 10)
		testtool.RunOpenSSL(t, "ts", "-verify", "-in", resp, "-digest", fmt.Sprintf("%x", digest), "-CAfile", ca, "-partial_chain", "-attime", at)
		if out, err := testtool.TryOpenSSL(t, "ts", "-verify", "-in", resp, "-digest", fmt.Sprintf("%x", bareDigest), "-CAfile", ca, "-partial_chain", "-attime", at); err == nil {
			t.Fatalf("openssl accepted the wrong digest:\n%s", out)
		}
		if !bytes.Equal(info.Digest, digest) {
			t.Fatalf("imprint %x, want %x", info.Digest, digest)
		}
	})
}
