package testtool

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"os"
	"regexp"
	"testing"
)

var x509Element = regexp.MustCompile(`(?s)<(?:\w+:)?X509Certificate>(.*?)</(?:\w+:)?X509Certificate>`)

// TrustedListCertificates extracts every distinct certificate of a
// trusted list from the shared vectors (trusted-lists/name): the services'
// digital identities and the list's signer, as an operator would collect
// them for --anchors.
func TrustedListCertificates(t testing.TB, name string) []*x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(Vectors(t, "trusted-lists", name))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []*x509.Certificate
	for _, m := range x509Element.FindAllSubmatch(data, -1) {
		der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(m[1]), nil)))
		if err != nil {
			t.Fatalf("%s: a certificate is not base64: %v", name, err)
		}
		if seen[string(der)] {
			continue
		}
		seen[string(der)] = true
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, c)
	}
	return out
}
