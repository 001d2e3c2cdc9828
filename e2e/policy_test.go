package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestChainVerifyAndPolicies drives `pecet chain verify` and `pecet policy`
// against pecetd --dev, whose default policy "dev" trusts the dev CA.
func TestChainVerifyAndPolicies(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	leaf := filepath.Join(d.dir, "client-sign.pem")
	garbage := write(t, work, "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
	pkits := func(name string) string { return testtool.Vectors(t, "nist-pkits", "certs", name) }
	// A version 1 CRL of the dev CA revoking client-sign, as `openssl ca
	// -gencrl` writes it without CRL extensions.
	v1CRL := devV1CRL(t, d.dir, work, leaf)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"valid for signing", []string{"chain", "verify", "--cert", leaf, "--purpose", "signing"}, 0, "VALID"},
		{"wrong purpose", []string{"chain", "verify", "--cert", leaf, "--purpose", "encryption"}, 1, "KEY_USAGE"},
		{"before validity", []string{"chain", "verify", "--cert", leaf, "--at", "2001-01-01T00:00:00Z"}, 1, "NOT_YET_VALID"},
		{"revocation required, no CRL", []string{"chain", "verify", "--cert", leaf, "--revocation", "require"}, 3, "REVOCATION_UNKNOWN"},
		{"unknown policy", []string{"chain", "verify", "--cert", leaf, "--policy", "nope"}, 4, "pecet policy list"},
		{"garbage certificate", []string{"chain", "verify", "--cert", garbage}, 2, "--cert"},
		{"bad purpose", []string{"chain", "verify", "--cert", leaf, "--purpose", "sealing"}, 2, "--purpose"},
		{"policy list", []string{"policy", "list"}, 0, "dev (default)"},
		{"policy show", []string{"policy", "show", "dev"}, 0, "anchor: CN=pecet dev CA"},
		{"policy show algorithms", []string{"policy", "show", "dev"}, 0, "algorithms: RSA >= 2048 bits"},
		{"policy show overrides", []string{"policy", "show", "dev"}, 0, "per-call overrides allowed: revocation, anchors, crls"},
		// Certificates Go's parser refuses are verdicts, not usage errors.
		{"negative serial (PKITS 4.4.15)", []string{"chain", "verify", "--cert", pkits("InvalidNegativeSerialNumberTest15EE.crt")}, 1, "FORMAT_FAILURE"},
		{"relative distribution point (PKITS 4.14.6)", []string{"chain", "verify", "--cert", pkits("InvaliddistributionPointTest6EE.crt")}, 1, "FORMAT_FAILURE"},
		// The dev policy has revocation off: a CRL the caller brings is
		// still used, and a v1 CRL is read.
		{"v1 CRL revokes under revocation off", []string{"chain", "verify", "--cert", leaf, "--crl", v1CRL}, 1, "REVOKED"},
		{"the verdict names the override", []string{"chain", "verify", "--cert", leaf, "--crl", v1CRL}, 1, "override:      crls: 1 supplied"},
		{"garbage CRL", []string{"chain", "verify", "--cert", leaf, "--crl", garbage}, 2, "--crl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := d.run(t, tc.args...)
			if code != tc.code || !strings.Contains(out+errs, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.want, out, errs)
			}
		})
	}
	out, errs, code := d.run(t, "chain", "verify", "--cert", leaf, "--purpose", "signing", "--json")
	var v struct {
		Status, Policy, Qualification string
		Chain                         []string
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Status != "VALID" || v.Policy != "dev" || v.Qualification != "AdES" || len(v.Chain) != 2 {
		t.Fatalf("--json: exit %d %+v\n%s%s", code, v, out, errs)
	}
}

// devV1CRL revokes leaf with `openssl ca` under the dev CA of dir and
// writes a version 1 CRL (no CRL extensions) into work.
func devV1CRL(t *testing.T, dir, work, leaf string) string {
	t.Helper()
	p := func(n string) string { return filepath.Join(work, n) }
	if err := os.WriteFile(p("index.txt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cnf := "[ca]\ndefault_ca = d\n[d]\ndatabase = " + p("index.txt") + "\ncertificate = " + filepath.Join(dir, "ca.pem") +
		"\nprivate_key = " + filepath.Join(dir, "ca-key.pem") + "\ndefault_md = sha256\ndefault_crl_days = 1\n"
	if err := os.WriteFile(p("ca.cnf"), []byte(cnf), 0o600); err != nil {
		t.Fatal(err)
	}
	testtool.RunOpenSSL(t, "ca", "-batch", "-config", p("ca.cnf"), "-revoke", leaf)
	testtool.RunOpenSSL(t, "ca", "-batch", "-config", p("ca.cnf"), "-gencrl", "-out", p("v1.crl"))
	if text := string(testtool.RunOpenSSL(t, "crl", "-in", p("v1.crl"), "-noout", "-text")); !strings.Contains(text, "Version 1 (0x0)") {
		t.Fatalf("not a v1 CRL:\n%s", text)
	}
	return p("v1.crl")
}
