package server

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/tsa"
)

// tsaQuery is a well-formed DER TimeStampReq.
func tsaQuery(t *testing.T) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte("x"))
	req, err := tsa.NewRequest(sum[:], crypto.SHA256, true, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tsaAuditLines counts the audit lines of POST /tsa.
func tsaAuditLines(t *testing.T, f *fixture) int {
	t.Helper()
	if b, err := os.ReadFile(f.auditFile); err == nil && len(b) == 0 {
		return 0
	}
	n := 0
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC == "POST /tsa" {
			n++
		}
	}
	return n
}

// metricValue scrapes /metrics for one sample ("name{labels}"); -1 when
// it is absent.
func metricValue(t *testing.T, h http.Handler, sample string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// TestTSAMalformedNotAudited: only a well-formed TimeStampReq (POST, the
// RFC 3161 media type, a body within the cap that parses) reaches the
// token and the audit log. Any other request to /tsa is answered (405,
// 415, 413, or an RFC 3161 rejection) and counted by reason in
// pecet_tsa_refused_total, and leaves no audit line (docs/security.md
// "Network, limits and identities").
func TestTSAMalformedNotAudited(t *testing.T) {
	f := newFixture(t)
	hs := httptest.NewServer(f.srv.HTTP())
	defer hs.Close()
	for _, c := range []struct {
		name, method, ctype string
		body                []byte
		n                   int
		status              int
		reason              string
	}{
		{"GET", http.MethodGet, "", nil, 200, http.StatusMethodNotAllowed, "method"},
		{"PUT a query", http.MethodPut, tsa.ContentTypeQuery, tsaQuery(t), 10, http.StatusMethodNotAllowed, "method"},
		{"wrong media type", http.MethodPost, "text/plain", tsaQuery(t), 20, http.StatusUnsupportedMediaType, "content_type"},
		{"too large", http.MethodPost, tsa.ContentTypeQuery, make([]byte, tsa.MaxRequestBytes+1), 5, http.StatusRequestEntityTooLarge, "too_large"},
		{"not DER", http.MethodPost, tsa.ContentTypeQuery, []byte("not a TimeStampReq"), 20, http.StatusOK, "malformed"},
		{"trailing bytes", http.MethodPost, tsa.ContentTypeQuery, append(tsaQuery(t), 0), 5, http.StatusOK, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sample := `pecet_tsa_refused_total{reason="` + c.reason + `"}`
			before := max(0, metricValue(t, f.srv.HTTP(), sample))
			for range c.n {
				req, _ := http.NewRequest(c.method, hs.URL+"/tsa", bytes.NewReader(c.body))
				if c.ctype != "" {
					req.Header.Set("Content-Type", c.ctype)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.status {
					t.Fatalf("HTTP %d, want %d", resp.StatusCode, c.status)
				}
				if c.status == http.StatusOK {
					r, err := tsa.ParseResponse(body)
					if err != nil || r.Status != tsa.StatusRejection || r.Fail != tsa.FailBadDataFormat {
						t.Fatalf("answer %v %+v, want a badDataFormat rejection", err, r)
					}
				}
			}
			if n := tsaAuditLines(t, f); n != 0 {
				t.Errorf("%d audit lines for %d refused requests, want 0", n, c.n)
			}
			if got := metricValue(t, f.srv.HTTP(), sample) - before; got != float64(c.n) {
				t.Errorf("%s grew by %v, want %d", sample, got, c.n)
			}
		})
	}
	// A well-formed request is still audited: begin and end.
	resp, err := http.Post(hs.URL+"/tsa", tsa.ContentTypeQuery, bytes.NewReader(tsaQuery(t)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := tsaAuditLines(t, f); n != 2 {
		t.Errorf("a well-formed request left %d audit lines, want 2", n)
	}
}

// TestTSARateLimits: POST /tsa has a token bucket per client address and
// one for all clients; a request over either is answered 429 before
// anything else (any method) and leaves no audit line.
func TestTSARateLimits(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		d.HTTP.TSA = config.HTTPTSA{RatePerClient: 0.01, BurstPerClient: 3, Rate: 0.01, Burst: 5, MaxClients: 100}
	}})
	h := f.srv.HTTP()
	query := tsaQuery(t)
	post := func(addr, method string) int {
		req := httptest.NewRequest(method, "/tsa", bytes.NewReader(query))
		req.Header.Set("Content-Type", tsa.ContentTypeQuery)
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return rec.Code
	}
	count := func(addr string, n int) (ok, limited int) {
		for range n {
			switch code := post(addr, http.MethodPost); code {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				limited++
			default:
				t.Fatalf("HTTP %d", code)
			}
		}
		return ok, limited
	}
	if ok, limited := count("192.0.2.1:1000", 10); ok != 3 || limited != 7 {
		t.Errorf("one address: %d granted, %d limited; want 3 and 7 (its burst)", ok, limited)
	}
	// The same /64 is the same client.
	if ok, _ := count("[2001:db8::1]:1", 3); ok != 2 {
		t.Errorf("an IPv6 address got %d, want the 2 left of the global burst", ok)
	}
	if ok, limited := count("[2001:db8::2]:1", 3); ok != 0 || limited != 3 {
		t.Errorf("global burst spent: another address got %d", ok)
	}
	if code := post("192.0.2.1:1000", http.MethodGet); code != http.StatusTooManyRequests {
		t.Errorf("a limited client's GET: %d, want 429 (the limit comes first)", code)
	}
	if n := tsaAuditLines(t, f); n != 2*5 {
		t.Errorf("%d audit lines, want 10 (begin and end of the 5 granted)", n)
	}
	if got := metricValue(t, h, `pecet_tsa_refused_total{reason="rate_limited"}`); got != 7+1+3+1 {
		t.Errorf("rate_limited = %v, want 12", got)
	}
}

// TestHTTPSlowBodyCutOff: a client that sends its headers and then the
// body slowly, or never, is cut off after http.read_timeout instead of
// holding the connection for ever; one that opens a connection and sends
// nothing is cut off after http.read_header_timeout, and an idle kept-alive
// connection after http.idle_timeout.
func TestHTTPSlowBodyCutOff(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		d.HTTP.ReadHeaderTimeout = 200 * time.Millisecond
		d.HTTP.ReadTimeout = 300 * time.Millisecond
		d.HTTP.IdleTimeout = 300 * time.Millisecond
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := f.srv.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })
	query := tsaQuery(t)
	for _, c := range []struct {
		name string
		send string // then nothing more
	}{
		{"body never finished", fmt.Sprintf("POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", tsa.ContentTypeQuery, len(query), query[:5])},
		{"headers never finished", "POST /tsa HTTP/1.1\r\nHost: x\r\n"},
		{"idle keep-alive", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			// The server must close the connection well within this.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, conn)
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the connection was still open after %v", time.Since(start).Round(time.Millisecond))
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("closed only after %v", d)
			}
		})
	}
	// The cut-off body is counted, not audited.
	if got := metricValue(t, f.srv.HTTP(), `pecet_tsa_refused_total{reason="body"}`); got != 1 {
		t.Errorf(`pecet_tsa_refused_total{reason="body"} = %v, want 1`, got)
	}
	if n := tsaAuditLines(t, f); n != 0 {
		t.Errorf("%d audit lines", n)
	}
}
