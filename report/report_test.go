package report_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"go/ast"
	"go/parser"
	"go/token"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/reporttest"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/report"
	"github.com/pecet-hsm/pecet/signer"
)

// TestEveryCodeIsMapped: every reason code any package of the module
// defines (a constant of type policy.Code) is in the one table, and maps
// to a sub-indication of ETSI EN 319 102-1.
func TestEveryCodeIsMapped(t *testing.T) {
	codes := definedCodes(t)
	if len(codes) < 25 {
		t.Fatalf("found only %d reason codes: the scan is broken", len(codes))
	}
	mapped := map[string]bool{}
	for c, s := range report.SubIndications {
		mapped[string(c)] = true
		if !report.IsSubIndication(s) {
			t.Errorf("%s maps to %q, not an ETSI sub-indication", c, s)
		}
	}
	for c, where := range codes {
		if !mapped[c] {
			t.Errorf("reason code %s (%s) is not in report.SubIndications (and docs/api.md \"Validation reports\")", c, where)
		}
	}
}

// definedCodes scans the module's non-test Go files for constants typed
// Code (in package policy) or policy.Code.
func definedCodes(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join("..")
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "api", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			g, ok := decl.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				if !isCodeType(vs.Type, f.Name.Name) {
					continue
				}
				for i, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out[s] = p + " " + vs.Names[i].Name
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isCodeType(e ast.Expr, pkg string) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return pkg == "policy" && x.Name == "Code"
	case *ast.SelectorExpr:
		id, ok := x.X.(*ast.Ident)
		return ok && id.Name == "policy" && x.Sel.Name == "Code"
	}
	return false
}

func cert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	if parent == nil {
		parent, parentKey = tpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func TestReportStructure(t *testing.T) {
	root, rk := cert(t, "Root", nil, nil)
	inter, ik := cert(t, "Inter", root, rk)
	leaf, _ := cert(t, "Leaf", inter, ik)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tstTime := at.Add(-time.Hour)
	token := []byte("time-stamp token DER")
	crl := []byte("CRL DER")
	sig := []byte("CMS signature")
	content := []byte("the secret signed content")
	digest := crypto.SHA256.New()
	digest.Write(content)
	docDigest := digest.Sum(nil)
	tl := sha256Of([]byte("trusted list"))

	tests := []struct {
		name    string
		in      report.Input
		main    string
		subs    []string
		proof   string
		objects int
		chain   bool
	}{
		{
			name: "valid with time-stamp, CRL and trusted list",
			in: report.Input{Verdict: policy.Verdict{Status: policy.Valid, Chain: []*x509.Certificate{leaf, inter, root}, Subject: "CN=Leaf",
				SigningTime: tstTime.Add(-time.Minute), TimestampTime: tstTime, ValidatedAt: tstTime, Policy: "qualified",
				Used: []policy.UsedObject{
					{Kind: policy.ObjectCertificate, Raw: leaf.Raw, Name: signer.UsedSigningCertificate},
					{Kind: policy.ObjectTimestamp, Raw: token, Time: tstTime},
					{Kind: policy.ObjectCRL, Raw: crl},
					{Kind: policy.ObjectTrustedList, Digest: tl, Time: at.Add(-48 * time.Hour), Name: "CZ trusted list, sequence 42"},
				}},
				Signature: sig, DocumentDigest: docDigest, DocumentHash: crypto.SHA256},
			main: report.TotalPassed, proof: report.POEValidation, objects: 6, chain: true,
		},
		{
			name: "invalid: digest mismatch and revoked",
			in: report.Input{Verdict: policy.Verdict{Status: policy.Invalid, Chain: []*x509.Certificate{leaf, inter, root}, ValidatedAt: at, Policy: "default",
				Reasons: []policy.Reason{{Code: policy.CodeDigestMismatch, Message: "x"}, {Code: policy.CodeRevoked, Message: "y"}, {Code: policy.CodeRevoked, Message: "z"}}},
				Signature: sig, AtProvided: true},
			main: report.TotalFailed, subs: []string{"HASH_FAILURE", "REVOKED"}, proof: report.POEProvided, objects: 3, chain: true,
		},
		{
			name: "indeterminate: no chain",
			in: report.Input{Verdict: policy.Verdict{Status: policy.Indeterminate, ValidatedAt: at, Policy: "default",
				Reasons: []policy.Reason{{Code: policy.CodeUntrustedRoot, Message: "no anchors"}},
				Used:    []policy.UsedObject{{Kind: policy.ObjectCertificate, Raw: leaf.Raw, Name: signer.UsedSigningCertificate}}},
				Signature: sig},
			main: report.Indeterminate, subs: []string{"NO_CERTIFICATE_CHAIN_FOUND"}, proof: report.POEValidation, objects: 1,
		},
		{
			// A TL_QUALIFIER note says how the qualification was decided:
			// no sub-indication (GENERIC before notes were skipped).
			name: "indeterminate with a trusted-list qualifier note",
			in: report.Input{Verdict: policy.Verdict{Status: policy.Indeterminate, ValidatedAt: at, Policy: "default", Chain: []*x509.Certificate{leaf, inter, root},
				Reasons: []policy.Reason{{Code: policy.CodeTrustedListQualifier, Message: "QCNoQSCD"}, {Code: policy.CodeTrustedListExpired, Message: "old list"}}}},
			main: report.Indeterminate, subs: []string{"TRY_LATER"}, proof: report.POEValidation, objects: 3, chain: true,
		},
		{
			name: "indeterminate certificate, no POE for the algorithm",
			in: report.Input{Verdict: policy.Verdict{Status: policy.Indeterminate, ValidatedAt: at, Chain: []*x509.Certificate{leaf, inter, root},
				Reasons: []policy.Reason{{Code: policy.CodeCryptoConstraintsNoPOE, Message: "SHA-1"}}},
				Extra: [][]byte{leaf.Raw, inter.Raw}},
			main: report.Indeterminate, subs: []string{"CRYPTO_CONSTRAINTS_FAILURE_NO_POE"}, proof: report.POEValidation, objects: 3, chain: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := report.Write(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, content) {
				t.Fatal("the report holds the signed content")
			}
			r := reporttest.CheckValidationReport(t, out)
			s := r.Reports[0]
			if s.Status.MainIndication != tc.main {
				t.Errorf("main indication %s, want %s", s.Status.MainIndication, tc.main)
			}
			var subs []string
			for _, u := range s.Status.SubIndications {
				subs = append(subs, strings.TrimPrefix(u, report.SubIndicationPrefix))
			}
			if strings.Join(subs, ",") != strings.Join(tc.subs, ",") {
				t.Errorf("sub-indications %v, want %v", subs, tc.subs)
			}
			if s.TimeInfo == nil || s.TimeInfo.BestSignatureTime.TypeOfProof != tc.proof {
				t.Errorf("best signature time %+v, want proof %s", s.TimeInfo, tc.proof)
			}
			if got := len(r.Objects.Objects); got != tc.objects {
				t.Errorf("%d objects, want %d", got, tc.objects)
			}
			if (len(s.Status.Associated) > 0 && s.Status.Associated[0].CertificateChain != nil) != tc.chain {
				t.Errorf("chain in report: want %v", tc.chain)
			}
			if s.SignerInformation == nil {
				t.Error("no signer certificate")
			}
			// Every object's digest is the SHA-256 of the bytes it names.
			want := map[string]bool{string(sha256Of(leaf.Raw)): true, string(sha256Of(inter.Raw)): true, string(sha256Of(root.Raw)): true,
				string(sha256Of(token)): true, string(sha256Of(crl)): true, string(tl): true}
			for _, o := range r.Objects.Objects {
				if !want[string(o.Representation.DigestAlgAndValue.Value)] {
					t.Errorf("object %s: digest of nothing verified", o.ID)
				}
			}
		})
	}
	t.Run("time-stamp is the best signature time's object", func(t *testing.T) {
		out, _ := report.Write(tests[0].in)
		r := reporttest.CheckValidationReport(t, out)
		s := r.Reports[0]
		obj := s.TimeInfo.BestSignatureTime.Object
		if obj == nil || s.TimeInfo.BestSignatureTime.Time != tstTime.Format(time.RFC3339) {
			t.Fatalf("best signature time %+v", s.TimeInfo.BestSignatureTime)
		}
		for _, o := range r.Objects.Objects {
			if o.ID == obj.Ref && o.ObjectType != report.ObjectTypePrefix+"timestamp" {
				t.Errorf("POE object %s is a %s", o.ID, o.ObjectType)
			}
		}
		if !strings.Contains(string(out), "sequence 42, issued 2026-11-29T10:00:00Z, object vo-") {
			t.Errorf("trusted list not described:\n%s", out)
		}
		if s.SignersDocument == nil || !bytes.Equal(s.SignersDocument.DigestAlgAndValue.Value, docDigest) {
			t.Error("signer's document digest missing")
		}
	})
}

func sha256Of(b []byte) []byte {
	h := crypto.SHA256.New()
	h.Write(b)
	return h.Sum(nil)
}

// TestCheckRejects: Check finds what a broken writer would produce.
func TestCheckRejects(t *testing.T) {
	good, err := report.Write(report.Input{Verdict: policy.Verdict{Status: policy.Invalid, ValidatedAt: time.Now(),
		Reasons: []policy.Reason{{Code: policy.CodeRevoked}},
		Used:    []policy.UsedObject{{Kind: policy.ObjectCertificate, Raw: []byte{1}, Name: signer.UsedSigningCertificate}}}, Signature: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	reporttest.CheckValidationReport(t, good)
	tests := []struct{ name, old, new string }{
		{"dangling reference", `VOReference="vo-1"`, `VOReference="vo-9"`},
		{"order", "<HashOnly>false</HashOnly>\n      <DocHashOnly>false</DocHashOnly>", "<DocHashOnly>false</DocHashOnly>\n      <HashOnly>false</HashOnly>"},
		{"main indication", report.TotalFailed, "urn:etsi:019102:mainindication:failed"},
		{"sub-indication", "subindication:REVOKED", "subindication:REVOKED_BADLY"},
		{"namespace", `xmlns="http://uri.etsi.org/19102/v1.2.1#"`, `xmlns="http://uri.etsi.org/19102/v1.1.1#"`},
		{"proof type", report.POEValidation, "urn:etsi:019102:poetype:guess"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.old, tc.new, 1)
			if bad == string(good) {
				t.Fatalf("%q not in the report:\n%s", tc.old, good)
			}
			if _, err := report.Check([]byte(bad)); err == nil {
				t.Errorf("accepted:\n%s", bad)
			}
		})
	}
}

// TestBounded: whatever a verdict holds, the report stays under MaxBytes
// and says what it left out.
func TestBounded(t *testing.T) {
	v := policy.Verdict{Status: policy.Invalid, ValidatedAt: time.Now(), Subject: strings.Repeat("S", 1<<20), Policy: strings.Repeat("P", 1<<20)}
	for i := range 5000 {
		v.Used = append(v.Used, policy.UsedObject{Kind: policy.ObjectCRL, Raw: []byte(strconv.Itoa(i))})
		v.Reasons = append(v.Reasons, policy.Reason{Code: policy.CodeRevoked, Message: strings.Repeat("é", 10000)})
		v.Overrides = append(v.Overrides, "x")
	}
	v.Overrides = v.Overrides[:20]
	out, err := report.Write(report.Input{Verdict: v, Signature: []byte("s")})
	if err != nil {
		t.Fatal(err)
	}
	r := reporttest.CheckValidationReport(t, out)
	if len(r.Objects.Objects) != report.MaxObjects {
		t.Errorf("%d objects, want the cap %d", len(r.Objects.Objects), report.MaxObjects)
	}
	if !strings.Contains(string(out), "4744 more validation objects") || !strings.Contains(string(out), "4936 more reasons") {
		t.Error("the report does not say what it left out")
	}
	t.Logf("report with every cap reached: %d bytes (limit %d)", len(out), report.MaxBytes)
}

// TestRoundTrip: what Write produces decodes into the same structure.
func TestRoundTrip(t *testing.T) {
	in := report.Input{Verdict: policy.Verdict{Status: policy.Valid, ValidatedAt: time.Unix(1e9, 0),
		Used: []policy.UsedObject{{Kind: policy.ObjectOCSPResponse, Raw: []byte("ocsp")}}}}
	out, err := report.Write(in)
	if err != nil {
		t.Fatal(err)
	}
	reporttest.CheckValidationReport(t, out)
	var r report.ValidationReport
	if err := xml.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	again, err := xml.MarshalIndent(&r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append([]byte(xml.Header), append(again, '\n')...), out) {
		t.Errorf("round trip differs:\n%s\n---\n%s", out, again)
	}
	if r.Objects.Objects[0].ObjectType != "urn:etsi:019102:validationObject:OCSPResponse" {
		t.Errorf("object type %s", r.Objects.Objects[0].ObjectType)
	}
}

func FuzzCheck(f *testing.F) {
	good, _ := report.Write(report.Input{Verdict: policy.Verdict{Status: policy.Valid, ValidatedAt: time.Now(),
		Used: []policy.UsedObject{{Kind: policy.ObjectCertificate, Raw: []byte{1}, Name: signer.UsedSigningCertificate}}}, Signature: []byte{1}})
	f.Add(good)
	f.Add([]byte("<ValidationReport/>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = report.Check(data)
	})
}

// TestDocumentedTable: docs/api.md "Validation reports" shows exactly
// report.SubIndications.
func TestDocumentedTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Validation reports\n")
	if !ok {
		t.Fatal(`docs/api.md has no section "Validation reports"`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	doc := map[string]string{}
	for _, line := range strings.Split(sec, "\n") {
		f := strings.Split(line, "|")
		if len(f) != 4 || !strings.HasPrefix(strings.TrimSpace(f[1]), "`") {
			continue
		}
		doc[strings.Trim(strings.TrimSpace(f[1]), "`")] = strings.Trim(strings.TrimSpace(f[2]), "`")
	}
	for c, s := range report.SubIndications {
		if doc[string(c)] != s {
			t.Errorf("docs/api.md maps %s to %q, the code to %q", c, doc[string(c)], s)
		}
	}
	if len(doc) != len(report.SubIndications) {
		t.Errorf("docs/api.md has %d rows, the table %d", len(doc), len(report.SubIndications))
	}
}
