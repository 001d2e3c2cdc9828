package policy

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// pkitsDeviations are the PKITS cases whose outcome differs from the
// suite's, each with the reason. docs/pkits.md explains them at length.
var pkitsDeviations = map[string]string{
	"4.1.4 Valid DSA Signatures Test4":            "crypto/x509 does not verify DSA signatures; DSA is not an allowed algorithm under ETSI TS 119 312 anyway",
	"4.1.5 Valid DSA Parameter Inheritance Test5": "crypto/x509 refuses to parse a DSA key that inherits its parameters",
	"4.14.4 Valid distributionPoint Test4":        "crypto/x509 refuses to parse a CRL distribution point named relative to the CRL issuer",
	"4.14.5 Valid distributionPoint Test5":        "crypto/x509 refuses to parse a CRL distribution point named relative to the CRL issuer",
	"4.14.29 Valid cRLIssuer Test29":              "crypto/x509 refuses to parse a CRL distribution point named relative to the CRL issuer",
}

type pkitsCase struct {
	Name                        string
	CertPath                    []string
	CRLPath                     []string
	ShouldValidate              bool
	InitialPolicySet            []string
	InitialPolicyMappingInhibit bool
	InitialExplicitPolicy       bool
	InitialAnyPolicyInhibit     bool
}

// pkitsTime is inside every PKITS validity period (2010 to 2030) and
// after every CRL's thisUpdate.
var pkitsTime = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func pkitsDirPath(t testing.TB) string {
	return filepath.Dir(testtool.Vectors(t, "nist-pkits", "vectors.json"))
}

func TestPKITS(t *testing.T) {
	dir := pkitsDirPath(t)
	raw, err := os.ReadFile(filepath.Join(dir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []pkitsCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != 249 {
		t.Fatalf("%d PKITS cases, want 249", len(cases))
	}
	passed := 0
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			got, why := runPKITS(t, dir, tc)
			dev, isDev := pkitsDeviations[tc.Name]
			switch {
			case got == tc.ShouldValidate && isDev:
				t.Errorf("listed as a deviation (%s) but now passes: remove it from the list", dev)
			case got != tc.ShouldValidate && !isDev:
				t.Errorf("validated=%v, want %v: %s", got, tc.ShouldValidate, why)
			case !isDev:
				passed++
			}
		})
	}
	t.Logf("PKITS: %d of %d cases pass, %d documented deviations", passed, len(cases), len(pkitsDeviations))
	t.Logf("PKITS: the most work of one case: %+v", maxPKITSWork)
}

func runPKITS(t *testing.T, dir string, tc pkitsCase) (bool, string) {
	var certs []*x509.Certificate
	for _, f := range tc.CertPath {
		b, err := os.ReadFile(filepath.Join(dir, "certs", f))
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return false, "parse " + f + ": " + err.Error()
		}
		certs = append(certs, c)
	}
	var crls []*CRL
	for _, f := range tc.CRLPath {
		b, err := os.ReadFile(filepath.Join(dir, "crls", f))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCRL(b)
		if err != nil {
			return false, "parse " + f + ": " + err.Error()
		}
		crls = append(crls, c)
	}
	o := PathOptions{
		Anchors:              certs[:1],
		Intermediates:        certs[1 : len(certs)-1],
		At:                   pkitsTime,
		ExplicitPolicy:       tc.InitialExplicitPolicy,
		PolicyMappingInhibit: tc.InitialPolicyMappingInhibit,
		AnyPolicyInhibit:     tc.InitialAnyPolicyInhibit,
	}
	for _, p := range tc.InitialPolicySet {
		switch {
		case p == "anyPolicy":
			p = anyPolicy
		case strings.HasPrefix(p, "NIST-test-policy-"):
			// The suite's arc for its test policies.
			p = "2.16.840.1.101.3.2.1.48." + strings.TrimPrefix(p, "NIST-test-policy-")
		default:
			t.Fatalf("unknown policy name %q", p)
		}
		o.InitialPolicies = append(o.InitialPolicies, p)
	}
	// Every PKITS path validates well within the default work budget.
	o.Budget = NewBudget(context.Background(), DefaultLimits)
	rev := &crlChecker{crls: crls, at: pkitsTime, now: pkitsTime, opts: o}
	_, f := findPath(certs[len(certs)-1], o, rev)
	if err := o.Budget.Err(); err != nil {
		t.Fatalf("work budget: %v (%+v)", err, o.Budget.Counts())
	}
	if n := o.Budget.Counts(); n.Steps > maxPKITSWork.Steps || n.SignatureChecks > maxPKITSWork.SignatureChecks {
		maxPKITSWork = n
	}
	if len(f) == 0 {
		return true, ""
	}
	return false, string(f[0].code) + ": " + f[0].msg
}

// maxPKITSWork is the most work one PKITS case needed (logged).
var maxPKITSWork BudgetCounts
