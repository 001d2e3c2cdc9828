package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestChainVerifyAndPolicies drives `pecet chain verify` and `pecet policy`
// against pecetd --dev, whose default policy "dev" trusts the dev CA.
func TestChainVerifyAndPolicies(t *testing.T) {
	d := startDev(t)
	work := t.TempDir()
	leaf := filepath.Join(d.dir, "client-sign.pem")
	garbage := write(t, work, "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
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
