package csr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

func TestParseSubject(t *testing.T) {
	cases := []struct {
		in   string
		want string // pkix.Name.String() of the result, "" for an error
		err  string
	}{
		{"CN=Jana Nováková,O=Example s.r.o.,C=CZ", "CN=Jana Nováková,O=Example s.r.o.,C=CZ", ""},
		{" CN = a , O=b ", "CN=a,O=b", ""},
		{`CN=Smith\, John,O=A\+B`, `CN=Smith\, John,O=A\+B`, ""},
		{`CN=\C4\8Cesk\C3\BD`, "CN=Český", ""},
		{`CN=\ lead and trail\ `, `CN=\ lead and trail\ `, ""},
		{"organizationIdentifier=NTRCZ-12345678,CN=x", "CN=x,2.5.4.97=#130e4e5452435a2d3132333435363738", ""},
		{"2.5.4.3=by oid", "CN=by oid", ""},
		{"cn=lower;o=semicolon", "CN=lower,O=semicolon", ""},
		{"", "", "empty"},
		{"CN=a+O=b", "", "multi-valued"},
		{"CN", "", "no '='"},
		{"XX=1", "", "unknown attribute type"},
		{"CN=", "", "empty value"},
		{"C=Czech", "", "two-letter"},
		{"C=cz", "", "two-letter"},
		{`CN=a"b`, "", "must be escaped"},
		{`CN=a\`, "", "at the end"},
		{`CN=\zz`, "", "bad escape"},
		{`CN=\FF`, "", "UTF-8"},
		{`CN=\80,C=AA`, "", "UTF-8"}, // found by FuzzParseSubject: a value ended by a separator
		{"CN=#0403", "", "#hex"},
		{"CN=a,,O=b", "", "no '='"},
		{"1.2=x", "", ""},
		{"3.1=x", "", "unknown attribute type"},
		{"01.2=x", "", "unknown attribute type"},
		{"CN=" + strings.Repeat("a", 257), "", "longer than"},
		{strings.Repeat("O=a,", 16) + "CN=x", "", "more than 16"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			rdns, err := ParseSubject(c.in)
			if c.err != "" || c.want == "" && err != nil {
				if err == nil || !errors.Is(err, ErrSubject) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("want error %q, got %v (%v)", c.err, err, rdns)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var n pkix.Name
			n.FillFromRDNSequence(&rdns)
			if c.want != "" && n.String() != c.want {
				t.Fatalf("got %q, want %q", n.String(), c.want)
			}
		})
	}
}

func TestParseSANs(t *testing.T) {
	good := []string{"DNS:pecet.example.cz", "dns:*.example.cz", "email:jana@example.cz", "IP:10.0.0.1", "IP:::1", "URI:https://example.cz/x"}
	s, err := ParseSANs(good)
	if err != nil || len(s.DNS) != 2 || len(s.Email) != 1 || len(s.IP) != 2 || len(s.URI) != 1 {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range []string{"pecet.example.cz", "DNS:", "DNS:a..b", "DNS:-a", "email:Jana <j@x.cz>", "IP:300.1.1.1", "URI:relative/path", "X400:x"} {
		if _, err := ParseSANs([]string{bad}); !errors.Is(err, ErrSAN) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// TestCreateOpenSSL: the request verifies with openssl req -verify, and
// openssl reads the subject in the order typed.
func TestCreateOpenSSL(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := Create(key, "CN=Jana Nováková,O=Example s.r.o.,C=CZ", []string{"email:jana@example.cz"})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil || csr.EmailAddresses[0] != "jana@example.cz" {
		t.Fatalf("%v", err)
	}
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(csr.RawSubject, &seq); err != nil || !seq[0][0].Type.Equal(oidCountry) {
		t.Fatalf("C is not the first RDN: %v %v", seq, err)
	}
	testtool.OpenSSL(t)
	p := filepath.Join(t.TempDir(), "req.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := testtool.TryOpenSSL(t, "req", "-in", p, "-verify", "-noout", "-subject", "-nameopt", "RFC2253,-esc_msb")
	if err != nil || !strings.Contains(string(out), "verify OK") && !strings.Contains(string(out), "Certificate request self-signature verify OK") {
		t.Fatalf("openssl req -verify: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CN=Jana Nováková,O=Example s.r.o.,C=CZ") {
		t.Errorf("openssl reads another subject:\n%s", out)
	}
}
