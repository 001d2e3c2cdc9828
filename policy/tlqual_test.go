package policy

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/xmldsig"
)

// TestTrustedListQualifiersCZ: the real Czech list's CA/QC services carry
// Qualifications (QCNoQSCD, QCQSCDStatusAsInCert… for I.CA policy OIDs);
// they are read with their criteria.
func TestTrustedListQualifiersCZ(t *testing.T) {
	l, err := LoadTrustedList(readTL(t, "CZ.xml"), []*x509.Certificate{mustCert(t, czSigners(t))})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var ica []QualificationElement
	for _, s := range l.Services {
		for _, e := range s.History[0].Qualifications {
			for _, q := range e.Qualifiers {
				seen[q]++
			}
		}
		if s.Name == "(1) I.CA - issuing qualified certificates" {
			ica = s.History[0].Qualifications
		}
	}
	for _, q := range []string{"QCNoQSCD", "QCQSCDStatusAsInCert"} {
		if seen[q] == 0 {
			t.Errorf("no current service has qualifier %s; seen %v", q, seen)
		}
	}
	if len(ica) != 1 || ica[0].Criteria.Assert != "atLeastOne" || len(ica[0].Criteria.PolicySets) != 2 ||
		ica[0].Criteria.PolicySets[0][0] != "1.3.6.1.4.1.6625.1.1.4.6" || ica[0].Qualifiers[0] != "QCNoQSCD" {
		t.Fatalf("I.CA qualifications %+v", ica)
	}
}

// czWithService is the real Czech list with the certificate of the
// service "(1) I.CA - issuing qualified certificates" replaced by ca
// (whose key the test has) and its current qualifier QCNoQSCD replaced
// by qualifier, re-signed with key.
func czWithService(t *testing.T, ca *x509.Certificate, qualifier string) ([]byte, *x509.Certificate) {
	t.Helper()
	key, signer := testTLSigner(t)
	data := readTL(t, "CZ.xml")
	name := []byte("(1) I.CA - issuing qualified certificates</Name>")
	at := bytes.Index(data, name)
	if at < 0 {
		t.Fatal("I.CA service not in CZ.xml")
	}
	head, tail := data[:at], data[at:]
	i := bytes.Index(tail, []byte("<X509Certificate>"))
	j := bytes.Index(tail, []byte("</X509Certificate>"))
	tail = append(append(append(bytes.Clone(tail[:i]), "<X509Certificate>"...), base64.StdEncoding.EncodeToString(ca.Raw)...), tail[j:]...)
	old := []byte("SvcInfoExt/QCNoQSCD\"")
	k := bytes.Index(tail, old)
	if k < 0 || k > bytes.Index(tail, []byte("<ServiceHistory>")) {
		t.Fatal("QCNoQSCD not in the current I.CA service information")
	}
	tail = append(append(bytes.Clone(tail[:k]), "SvcInfoExt/"+qualifier+"\""...), tail[k+len(old):]...)
	out, err := ResignTrustedList(append(bytes.Clone(head), tail...), key)
	if err != nil {
		t.Fatal(err)
	}
	return out, signer
}

// TestTrustedListQualifiers: the qualifiers of the anchor's service, for
// certificates matching the criteria (here the I.CA policy OIDs of the
// real list), override what the certificate says, with a TL_QUALIFIER
// note; a certificate outside the criteria keeps its own claims.
func TestTrustedListQualifiers(t *testing.T) {
	ica := issue(t, nil, tmpl("I.CA stand-in", true), nil)
	const matching, other = "1.3.6.1.4.1.6625.1.1.4.6", "1.2.3.4.5"
	leaf := func(policy string, sscd bool, withQC bool) *x509.Certificate {
		tpl := tmpl("QC leaf", false)
		tpl.Policies = []x509.OID{mustOID(t, policy)}
		if withQC {
			tpl.ExtraExtensions = []pkix.Extension{qcStatements(t, sscd, "esign")}
		}
		return issue(t, ica, tpl, nil).cert
	}
	tests := []struct {
		name      string
		qualifier string
		leaf      *x509.Certificate
		required  []string
		status    Status
		want      Qualification
		note      string
	}{
		{"real QCNoQSCD, cert claims QSCD", "QCNoQSCD", leaf(matching, true, true), nil, Valid, AdESQC, "QCNoQSCD"},
		{"real QCNoQSCD, other policy", "QCNoQSCD", leaf(other, true, true), nil, Valid, QES, ""},
		{"QCWithSSCD, cert without sscd", "QCWithSSCD", leaf(matching, false, true), nil, Valid, QES, "QCWithSSCD"},
		{"QCWithQSCD, cert without sscd", "QCWithQSCD", leaf(matching, false, true), nil, Valid, QES, "QCWithQSCD"},
		{"QCQSCDManagedOnBehalf", "QCQSCDManagedOnBehalf", leaf(matching, false, true), nil, Valid, QES, "QCQSCDManagedOnBehalf"},
		{"NotQualified wins over the cert", "NotQualified", leaf(matching, true, true), nil, Valid, AdES, "NotQualified"},
		{"NotQualified, policy requires qc", "NotQualified", leaf(matching, true, true), []string{"compliance"}, Invalid, AdES, "NotQualified"},
		{"QCStatement, cert without statements", "QCStatement", leaf(matching, false, false), nil, Valid, AdESQC, "QCStatement"},
		{"QCForWSA", "QCForWSA", leaf(matching, true, true), nil, Valid, AdESQC, "QCForWSA"},
		{"QCQSCDStatusAsInCert", "QCQSCDStatusAsInCert", leaf(matching, true, true), nil, Valid, QES, "QCQSCDStatusAsInCert"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, signer := czWithService(t, ica.cert, tc.qualifier)
			l, err := LoadTrustedList(data, []*x509.Certificate{signer})
			if err != nil {
				t.Fatal(err)
			}
			e, err := NewEngine("tl", &Policy{Name: "tl", TrustedList: l, RequiredQCStatements: tc.required, Revocation: RevocationOff,
				// The real list is long past its NextUpdate.
				TrustedListGrace: 10 * 365 * 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			e.Now = func() time.Time { return testNow }
			v := e.Validate(Request{Leaf: tc.leaf, At: testNow})
			if v.Status != tc.status || v.Qualification != tc.want {
				t.Fatalf("%s %s %v, want %s %s", v.Status, v.Qualification, v.Reasons, tc.status, tc.want)
			}
			var note string
			for _, r := range v.Reasons {
				if r.Code == CodeTrustedListQualifier {
					note = r.Message
				}
			}
			if (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) || (note != "" && !strings.Contains(note, "I.CA")) {
				t.Fatalf("note %q, want one naming %q", note, tc.note)
			}
		})
	}
}

// TestCriteria: the assert modes, key-usage criteria, nesting, and
// criteria pecet cannot evaluate (never met).
func TestCriteria(t *testing.T) {
	ca := issue(t, nil, tmpl("CA", true), nil)
	tpl := tmpl("leaf", false)
	tpl.Policies = []x509.OID{mustOID(t, "1.2.3"), mustOID(t, "1.2.4")}
	cert := issue(t, ca, tpl, nil).cert // digitalSignature, nonRepudiation
	set := func(oids ...string) [][]string { return [][]string{oids} }
	tests := []struct {
		name string
		c    Criteria
		want bool
	}{
		{"all, both policies of a set", Criteria{Assert: "all", PolicySets: set("1.2.3", "1.2.4")}, true},
		{"all, one missing", Criteria{Assert: "all", PolicySets: set("1.2.3", "1.2.5")}, false},
		{"atLeastOne", Criteria{Assert: "atLeastOne", PolicySets: [][]string{{"9.9"}, {"1.2.4"}}}, true},
		{"none", Criteria{Assert: "none", PolicySets: [][]string{{"9.9"}}}, true},
		{"none, one met", Criteria{Assert: "none", PolicySets: [][]string{{"1.2.3"}}}, false},
		{"key usage met", Criteria{Assert: "all", KeyUsages: []map[string]bool{{"nonRepudiation": true, "keyEncipherment": false}}}, true},
		{"key usage not met", Criteria{Assert: "all", KeyUsages: []map[string]bool{{"keyAgreement": true}}}, false},
		{"nested", Criteria{Assert: "all", Sub: []Criteria{{Assert: "atLeastOne", PolicySets: set("1.2.3")}}}, true},
		{"unsupported, all", Criteria{Assert: "all", PolicySets: set("1.2.3"), Unsupported: []string{"OtherCriteriaList"}}, false},
		{"unsupported, none", Criteria{Assert: "none", Unsupported: []string{"OtherCriteriaList"}}, false},
		{"empty all", Criteria{Assert: "all"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.Matches(cert); got != tc.want {
				t.Fatalf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzQualifications: the Qualifications reader (reached in a list only
// after its signature verified) never panics on any ServiceInformation,
// and matching what it read is bounded.
func FuzzQualifications(f *testing.F) {
	f.Add([]byte(`<ServiceInformation xmlns="http://uri.etsi.org/02231/v2#" xmlns:q="http://uri.etsi.org/TrstSvc/SvcInfoExt/eSigDir-1999-93-EC-TrustedList/#" xmlns:x="http://uri.etsi.org/01903/v1.3.2#"><ServiceInformationExtensions><Extension><q:Qualifications><q:QualificationElement><q:Qualifiers><q:Qualifier uri="http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/QCNoQSCD"/></q:Qualifiers><q:CriteriaList assert="atLeastOne"><q:PolicySet><q:PolicyIdentifier><x:Identifier>1.2.3</x:Identifier></q:PolicyIdentifier></q:PolicySet><q:KeyUsage><q:KeyUsageBit name="nonRepudiation">true</q:KeyUsageBit></q:KeyUsage><q:CriteriaList assert="none"/></q:CriteriaList></q:QualificationElement></q:Qualifications></Extension></ServiceInformationExtensions></ServiceInformation>`))
	ca := issue(f, nil, tmpl("CA", true), nil)
	leaf := issue(f, ca, tmpl("leaf", false), nil).cert
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := xmldsig.Parse(data)
		if err != nil {
			return
		}
		elems, err := readQualifications(root, "fuzz")
		if err != nil {
			return
		}
		qualifyByList(leaf, QCInfo{}, elems)
	})
}
