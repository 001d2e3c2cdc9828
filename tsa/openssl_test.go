package tsa

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/digitorus/timestamp"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

// TestOpenSSLInterop is the user's path (docs/tsa.md): openssl ts -query,
// POST to /tsa over a real loopback HTTP server, openssl ts -verify.
func TestOpenSSLInterop(t *testing.T) {
	testtool.OpenSSL(t)
	f := newFixture(t, nil)
	url := f.server(t)
	dir := t.TempDir()
	data := writeFile(t, dir, "filing.xml", []byte("<PRIHL><employee dep=\"123\"/></PRIHL>\n"))
	caFile := writeFile(t, dir, "ca.pem", certPEM(f.ca.Cert))
	tsaFile := writeFile(t, dir, "tsa.pem", certPEM(f.cert))
	for _, tc := range []struct {
		name  string
		query []string
	}{
		{"cert+nonce", []string{"-cert"}},
		{"cert,no_nonce", []string{"-cert", "-no_nonce"}},
		{"nocert+nonce", nil},
		{"nocert,no_nonce", []string{"-no_nonce"}},
		{"sha512,policy2", []string{"-sha512", "-cert", "-tspolicy", "1.2.3.4.2"}},
		{"sha384", []string{"-sha384", "-cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			q := filepath.Join(d, "q.tsq")
			args := append([]string{"ts", "-query", "-data", data}, tc.query...)
			if !strings.Contains(strings.Join(tc.query, " "), "-sha") {
				args = append(args, "-sha256")
			}
			testtool.RunOpenSSL(t, append(args, "-out", q)...)
			qb, err := os.ReadFile(q)
			if err != nil {
				t.Fatal(err)
			}
			r := writeFile(t, d, "r.tsr", post(t, url, qb))
			testtool.RunOpenSSL(t, "ts", "-verify", "-in", r, "-queryfile", q, "-CAfile", caFile, "-untrusted", tsaFile)
			testtool.RunOpenSSL(t, "ts", "-verify", "-in", r, "-data", data, "-CAfile", caFile, "-untrusted", tsaFile)
			text := string(testtool.RunOpenSSL(t, "ts", "-reply", "-in", r, "-text"))
			for _, want := range []string{"Status: Granted.", "Accuracy: 0x01 seconds, 0x01F4 millis", "Ordering: no"} {
				if !strings.Contains(text, want) {
					t.Errorf("openssl -text lacks %q:\n%s", want, text)
				}
			}
			if !strings.Contains(text, "TSA: DirName:") || !strings.Contains(text, "test TSA") {
				t.Errorf("the TSA name is missing:\n%s", text)
			}

			// An independent parser agrees (digitorus/timestamp checks the
			// CMS signature when certificates are embedded).
			ts, err := timestamp.ParseResponse(mustRead(t, r))
			if err != nil {
				t.Fatalf("digitorus/timestamp: %v", err)
			}
			if strings.Contains(strings.Join(tc.query, " "), "-cert") != (len(ts.Certificates) > 0) {
				t.Errorf("certificates embedded: %d, asked: %v", len(ts.Certificates), tc.query)
			}
		})
	}

	t.Run("wrong data fails", func(t *testing.T) {
		d := t.TempDir()
		q := filepath.Join(d, "q.tsq")
		testtool.RunOpenSSL(t, "ts", "-query", "-data", data, "-sha256", "-cert", "-out", q)
		r := writeFile(t, d, "r.tsr", post(t, url, mustRead(t, q)))
		other := writeFile(t, d, "other", []byte("something else"))
		if out, err := testtool.TryOpenSSL(t, "ts", "-verify", "-in", r, "-data", other, "-CAfile", caFile, "-untrusted", tsaFile); err == nil {
			t.Fatalf("openssl accepted a token for other data:\n%s", out)
		}
	})

	t.Run("openssl query parses and round-trips", func(t *testing.T) {
		q := filepath.Join(t.TempDir(), "q.tsq")
		testtool.RunOpenSSL(t, "ts", "-query", "-data", data, "-sha256", "-cert", "-out", q)
		qb := mustRead(t, q)
		req, err := ParseRequest(qb)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(mustRead(t, data))
		if string(req.Digest) != string(sum[:]) || !req.CertReq || req.Nonce == nil {
			t.Fatalf("parsed %+v", req)
		}
		again, err := req.Marshal()
		if err != nil || string(again) != string(qb) {
			t.Fatalf("Marshal differs from openssl's DER (%v)", err)
		}
	})
}

// TestOpenSSLReadsFailures: openssl decodes our failure bits to the names
// RFC 3161 gives them.
func TestOpenSSLReadsFailures(t *testing.T) {
	testtool.OpenSSL(t)
	f := newFixture(t, nil)
	url := f.server(t)
	d := t.TempDir()
	data := writeFile(t, d, "data", []byte("x"))
	q := filepath.Join(d, "q.tsq")
	testtool.RunOpenSSL(t, "ts", "-query", "-data", data, "-sha1", "-out", q)
	r := writeFile(t, d, "r.tsr", post(t, url, mustRead(t, q)))
	text := string(testtool.RunOpenSSL(t, "ts", "-reply", "-in", r, "-text"))
	if !strings.Contains(text, "Status: Rejected.") || !strings.Contains(text, "unrecognized or unsupported algorithm identifier") {
		t.Fatalf("openssl reads:\n%s", text)
	}
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
