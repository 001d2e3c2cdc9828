package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testTLSigner is a key and certificate that re-signs the Czech list in
// tests: the real signer's key is not ours, and tests need issues with
// other sequence numbers and dates.
func testTLSigner(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test TL signer"},
		NotBefore: testNow.AddDate(-10, 0, 0), NotAfter: testNow.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, mustCert(t, der)
}

// czIssue is the real Czech list with another sequence number, issue time
// and NextUpdate, re-signed with key.
func czIssue(t testing.TB, key *rsa.PrivateKey, seq string, issued, next time.Time) []byte {
	t.Helper()
	data := readTL(t, "CZ.xml")
	repl := func(re, with string) {
		r := regexp.MustCompile(re)
		if !r.Match(data) {
			t.Fatalf("%s not in CZ.xml", re)
		}
		data = r.ReplaceAll(data, []byte(with))
	}
	repl(`<TSLSequenceNumber>[^<]*<`, "<TSLSequenceNumber>"+seq+"<")
	repl(`<ListIssueDateTime>[^<]*<`, "<ListIssueDateTime>"+issued.UTC().Format(time.RFC3339)+"<")
	repl(`(<NextUpdate>\s*<dateTime>)[^<]*<`, "${1}"+next.UTC().Format(time.RFC3339)+"<")
	out, err := ResignTrustedList(data, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTrustedListReplacement: a list replaces the one in force only when
// its signature verifies, its sequence number is not lower and it is not
// past its NextUpdate (plus grace); at start an outdated list still loads.
func TestTrustedListReplacement(t *testing.T) {
	key, cert := testTLSigner(t)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	load := func(data []byte) (*TrustedList, error) { return LoadTrustedList(data, []*x509.Certificate{cert}) }
	cur, err := load(czIssue(t, key, "78", now.AddDate(0, -1, 0), now.AddDate(0, 5, 0)))
	if err != nil {
		t.Fatalf("re-signed list: %v", err)
	}
	if cur.SequenceNumber != "78" || !cur.IssueDate.Equal(now.AddDate(0, -1, 0)) {
		t.Fatalf("sequence %s issued %s", cur.SequenceNumber, cur.IssueDate)
	}
	// The re-signed list does not verify with the real signer: the test
	// lists are not Czech lists.
	if _, err := LoadTrustedList(czIssue(t, key, "78", now, now), []*x509.Certificate{mustCert(t, czSigners(t))}); !errors.Is(err, ErrTrustedListSig) {
		t.Fatalf("re-signed list with the CZ signer: %v", err)
	}
	tests := []struct {
		name  string
		cur   *TrustedList
		seq   string
		next  time.Time
		grace time.Duration
		want  error
	}{
		{"newer", cur, "79", now.AddDate(0, 6, 0), 0, nil},
		{"same issue again", cur, "78", now.AddDate(0, 5, 0), 0, nil},
		{"older", cur, "77", now.AddDate(0, 6, 0), 0, ErrTrustedListOlder},
		{"past NextUpdate", cur, "80", now.Add(-time.Hour), 0, ErrTrustedListStale},
		{"past NextUpdate within grace", cur, "80", now.Add(-time.Hour), 2 * time.Hour, nil},
		{"not a number", cur, "80a", now.AddDate(0, 6, 0), 0, ErrTrustedList},
		{"at start, past NextUpdate", nil, "80", now.Add(-time.Hour), 0, nil},
		{"at start, zero", nil, "0", now.AddDate(0, 6, 0), 0, ErrTrustedList},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, err := load(czIssue(t, key, tc.seq, now.AddDate(0, 0, -1), tc.next))
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckReplacement(tc.cur, next, now, tc.grace); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestFetchTrustedList: the fetch is https only, bounded in time and size,
// and an error status is an error, never a list.
func TestFetchTrustedList(t *testing.T) {
	list := readTL(t, "CZ.xml")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/CZ.xml":
			_, _ = w.Write(list)
		case "/big-chunked":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			for range 20 {
				_, _ = w.Write(bytes.Repeat([]byte("x"), 64<<10))
			}
		case "/slow":
			time.Sleep(2 * time.Second)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 500 * time.Millisecond
	tests := []struct {
		name string
		url  string
		max  int64
		want error
	}{
		{"ok", srv.URL + "/CZ.xml", 0, nil},
		{"larger than the cap (Content-Length)", srv.URL + "/CZ.xml", 1 << 10, ErrTrustedListTooLarge},
		{"larger than the cap (chunked)", srv.URL + "/big-chunked", 1 << 20, ErrTrustedListTooLarge},
		{"not found", srv.URL + "/nope", 0, ErrTrustedListFetch},
		{"timeout", srv.URL + "/slow", 0, ErrTrustedListFetch},
		{"plain http", strings.Replace(srv.URL, "https://", "http://", 1) + "/CZ.xml", 0, ErrTrustedListFetch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FetchTrustedList(context.Background(), client, tc.url, tc.max)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, list) {
				t.Fatalf("got %d bytes, want the list's %d", len(got), len(list))
			}
		})
	}
}
