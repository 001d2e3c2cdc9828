package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/policy"
)

func sha256Req(t testing.TB, data string) *Request {
	t.Helper()
	sum := sha256.Sum256([]byte(data))
	r, err := NewRequest(sum[:], crypto.SHA256, true, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func der(t testing.TB, r *Request) []byte {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFailureStatuses: every failure is a TimeStampResp with PKIStatus
// rejection and the right failInfo, never a Go error.
func TestFailureStatuses(t *testing.T) {
	good := der(t, sha256Req(t, "x"))
	sha1sum := sha1.Sum([]byte("x"))
	withHash := func(h crypto.Hash, digest []byte) []byte {
		id, _ := HashOID(h)
		return der(t, &Request{HashOID: id, Digest: digest})
	}
	unknownHash := der(t, &Request{HashOID: asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 8}, Digest: make([]byte, 32)}) // SHA3-256
	withPolicy := func(p asn1.ObjectIdentifier) []byte {
		r := sha256Req(t, "x")
		r.Policy = p
		return der(t, r)
	}
	// Hand-made encodings.
	version2 := bytes.Replace(good, []byte{0x02, 0x01, 0x01}, []byte{0x02, 0x01, 0x02}, 1)
	indefinite := append([]byte{0x30, 0x80}, append(good[2:], 0, 0)...)
	certReqFalse := append([]byte(nil), good...)
	certReqFalse[len(certReqFalse)-1] = 0x00 // BOOLEAN TRUE → FALSE: DER omits a default
	withExt := func() []byte {
		body := append(append([]byte(nil), good[2:]...), 0xa0, 0x02, 0x30, 0x00)
		return append([]byte{0x30, byte(len(body))}, body...)
	}()

	brokenKey := func(c *Config) {
		c.Key = func(context.Context) (crypto.Signer, []*x509.Certificate, error) {
			return nil, nil, errors.New("CKR_DEVICE_ERROR on session 7")
		}
	}
	wrongCert := func(c *Config) {
		key, chain, _ := c.Key(context.Background())
		other := newFixture(t, nil)
		_ = key
		c.Key = StaticKey(other.key, chain) // key ≠ certificate
	}
	clockOff := func(c *Config) {
		c.Clock = &ClockGuard{Ref: OffsetFile{Path: "/nonexistent/offset"}, Accuracy: time.Second}
		_ = c.Clock.Check(context.Background())
	}

	for _, tc := range []struct {
		name string
		req  []byte
		mod  func(*Config)
		want FailureInfo
		text string
	}{
		{"SHA-1", withHash(crypto.SHA1, sha1sum[:]), nil, FailBadAlg, "SHA-1 is not accepted"},
		{"unknown hash", unknownHash, nil, FailBadAlg, "unknown hash algorithm"},
		{"SHA-384 not configured", withHash(crypto.SHA384, make([]byte, 48)), func(c *Config) { c.Hashes = []crypto.Hash{crypto.SHA256} }, FailBadAlg, "not accepted"},
		{"version 2", version2, nil, FailBadRequest, "version 2"},
		{"garbage", []byte("hello"), nil, FailBadDataFormat, "not a DER SEQUENCE"},
		{"empty", nil, nil, FailBadDataFormat, "not a DER SEQUENCE"},
		{"trailing data", append(append([]byte(nil), good...), 0), nil, FailBadDataFormat, "trailing data"},
		{"BER indefinite length", indefinite, nil, FailBadDataFormat, "not a DER SEQUENCE"},
		{"explicit certReq FALSE", certReqFalse, nil, FailBadDataFormat, "certReq"},
		{"short imprint", withHash(crypto.SHA256, make([]byte, 20)), nil, FailBadDataFormat, "20 bytes"},
		{"long imprint", withHash(crypto.SHA512, make([]byte, 65)), nil, FailBadDataFormat, "65 bytes"},
		{"over 64 KiB", make([]byte, MaxRequestBytes+1), nil, FailBadDataFormat, "larger than"},
		{"policy not accepted", withPolicy(asn1.ObjectIdentifier{1, 2, 3, 4, 99}), nil, FailUnacceptedPolicy, "1.2.3.4.99"},
		{"extensions", withExt, nil, FailUnacceptedExt, "extensions"},
		{"clock not trusted", good, clockOff, FailTimeNotAvailable, "time source"},
		{"HSM failure", good, brokenKey, FailSystemFailure, "cannot issue"},
		{"certificate not the key", good, wrongCert, FailSystemFailure, "cannot issue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.mod)
			out, res := f.a.Respond(context.Background(), tc.req)
			r, err := ParseResponse(out)
			if err != nil {
				t.Fatalf("response does not parse: %v", err)
			}
			if r.Status != StatusRejection || r.Fail != tc.want || r.Token != nil {
				t.Fatalf("got status %v fail %v, want rejection %v", r.Status, r.Fail, tc.want)
			}
			if res.Fail != tc.want || res.Status != StatusRejection {
				t.Errorf("Result says %v/%v", res.Status, res.Fail)
			}
			if len(r.StatusText) != 1 || !strings.Contains(r.StatusText[0], tc.text) {
				t.Errorf("status text %q lacks %q", r.StatusText, tc.text)
			}
			if strings.Contains(strings.Join(r.StatusText, ""), "CKR_") {
				t.Errorf("an internal cause reached the client: %q", r.StatusText)
			}
			if tc.want == FailSystemFailure && res.Cause == nil {
				t.Error("a system failure without a cause for the log")
			}
		})
	}
}

func TestGrantedToken(t *testing.T) {
	f := newFixture(t, nil)
	req := sha256Req(t, "filing")
	req.Nonce = new(big.Int).Lsh(big.NewInt(1), 300) // a 301-bit nonce: echoed exactly
	r, res := stamp(t, f.a, req)
	if r.Status != StatusGranted || res.Info == nil {
		t.Fatalf("status %v %v", r.Status, r.StatusText)
	}
	if !bytes.Equal(res.Token, r.Token) {
		t.Fatal("Result.Token is not the token in the response")
	}
	info, v, err := Verify(r.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing"), Nonce: req.Nonce})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != policy.Valid {
		t.Fatalf("verdict %v %v", v.Status, v.Reasons)
	}
	if info.Nonce.Cmp(req.Nonce) != 0 || !info.Policy.Equal(testPolicy) || info.Accuracy != 1500*time.Millisecond || info.Ordering {
		t.Fatalf("info %+v", info)
	}
	if !v.TimestampTime.Equal(info.GenTime) || info.Serial.Cmp(res.Info.Serial) != 0 {
		t.Errorf("verdict time %v, genTime %v", v.TimestampTime, info.GenTime)
	}
	if bl := info.Serial.BitLen(); bl < 64 || bl > 160 || info.Serial.Sign() <= 0 {
		t.Errorf("serial of %d bits", bl)
	}
}

func TestVerifyFindings(t *testing.T) {
	f := newFixture(t, nil)
	req := sha256Req(t, "filing")
	r, _ := stamp(t, f.a, req)
	noCert := sha256Req(t, "filing")
	noCert.CertReq = false
	rNoCert, _ := stamp(t, f.a, noCert)
	otherCA, err := devca.NewCA("other CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(otherCA.Cert)

	for _, tc := range []struct {
		name   string
		token  []byte
		opts   VerifyOptions
		status policy.Status
		code   policy.Code
	}{
		{"valid", r.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing")}, policy.Valid, ""},
		{"valid by digest", r.Token, VerifyOptions{Validator: f.validator(), Digest: req.Digest}, policy.Valid, ""},
		{"other data", r.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filinG")}, policy.Invalid, policy.CodeDigestMismatch},
		{"digest of another hash", r.Token, VerifyOptions{Validator: f.validator(), Digest: make([]byte, 48), DigestHash: crypto.SHA384}, policy.Invalid, policy.CodeDigestMismatch},
		{"wrong nonce", r.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing"), Nonce: big.NewInt(42)}, policy.Invalid, CodeNonceMismatch},
		{"untrusted TSA", r.Token, VerifyOptions{Validator: engineFor(t, policy.RevocationOff, nil, otherCA.Cert), Data: []byte("filing")}, policy.Indeterminate, policy.CodeUntrustedRoot},
		{"no anchors", r.Token, VerifyOptions{Data: []byte("filing")}, policy.Indeterminate, policy.CodeUntrustedRoot},
		{"no certificates, none configured", rNoCert.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing")}, policy.Indeterminate, policy.CodeSignerNotFound},
		{"no certificates, TSA configured", rNoCert.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing"), TSACertificates: []*x509.Certificate{f.cert}}, policy.Valid, ""},
		{"after the TSA certificate expired: no proof of existence", r.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing"), Now: func() time.Time { return time.Now().AddDate(5, 0, 0) }}, policy.Indeterminate, CodeOutOfBoundsNoPOE},
		{"judged when expired", r.Token, VerifyOptions{Validator: f.validator(), Data: []byte("filing"), At: time.Now().AddDate(5, 0, 0)}, policy.Indeterminate, CodeOutOfBoundsNoPOE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, v, err := Verify(tc.token, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != tc.status || (tc.code != "" && !hasReason(v, tc.code)) {
				t.Fatalf("got %v %v, want %v %v", v.Status, v.Reasons, tc.status, tc.code)
			}
		})
	}

	t.Run("tampered signature", func(t *testing.T) {
		bad := bytes.Clone(r.Token)
		i := bytes.Index(bad, req.Digest)
		bad[i] ^= 1 // the imprint inside the signed TSTInfo
		_, v, err := Verify(bad, VerifyOptions{Validator: f.validator(), Digest: req.Digest})
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != policy.Invalid || !hasReason(v, policy.CodeDigestMismatch) {
			t.Fatalf("got %v %v", v.Status, v.Reasons)
		}
	})
	t.Run("needs data", func(t *testing.T) {
		if _, _, err := Verify(r.Token, VerifyOptions{}); !errors.Is(err, ErrNoImprint) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("the token alone, when asked", func(t *testing.T) {
		info, v, err := Verify(r.Token, VerifyOptions{Validator: f.validator(), NoImprint: true})
		if err != nil || v.Status != policy.Valid || !bytes.Equal(info.Digest, req.Digest) || info.Hash != crypto.SHA256 {
			t.Fatalf("%v %v %x", err, v, info.Digest)
		}
		// Everything but the imprint still counts.
		_, v, err = Verify(r.Token, VerifyOptions{Validator: f.validator(), NoImprint: true, Nonce: big.NewInt(42)})
		if err != nil || v.Status != policy.Invalid {
			t.Fatalf("%v %v", err, v)
		}
	})
	t.Run("not a token", func(t *testing.T) {
		if _, _, err := Verify([]byte{0x30, 0x00}, VerifyOptions{Data: []byte("x")}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err %v", err)
		}
	})
}

// TestCheckCertificate: what pecetd checks at start-up.
func TestCheckCertificate(t *testing.T) {
	f := newFixture(t, nil)
	now := time.Now()
	signing, err := f.ca.Issue("not a TSA", devca.CMSSign, f.key.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	other := newFixture(t, nil)
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		pub  crypto.PublicKey
		want error
	}{
		{"good", f.cert, f.key.Public(), nil},
		{"another key", f.cert, other.key.Public(), ErrCertificateMismatch},
		{"e-mail protection EKU", signing, f.key.Public(), ErrExtKeyUsage},
		{"TLS client without the EKU extension critical", tlsCert(t, f), f.key.Public(), ErrExtKeyUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCertificate(tc.cert, tc.pub)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := f.a.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func tlsCert(t *testing.T, f *fixture) *x509.Certificate {
	c, err := f.ca.Issue("client", devca.TLSClient, f.key.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGenTimeMonotonic: a clock stepped back never yields an earlier token.
func TestGenTimeMonotonic(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, func(c *Config) {
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	})
	times := []time.Time{}
	for _, step := range []time.Duration{0, 1500 * time.Microsecond, -time.Hour, 2 * time.Hour} {
		mu.Lock()
		clock = clock.Add(step)
		mu.Unlock()
		r, res := stamp(t, f.a, sha256Req(t, "x"))
		if r.Status != StatusGranted {
			t.Fatal(r.StatusText)
		}
		times = append(times, res.Info.GenTime)
	}
	for i := 1; i < len(times); i++ {
		if times[i].Before(times[i-1]) {
			t.Fatalf("genTime went back: %v", times)
		}
	}
	if !times[2].Equal(times[1]) || !times[1].Equal(time.Date(2026, 3, 1, 12, 0, 0, 1000000, time.UTC)) {
		t.Fatalf("times %v", times)
	}
}

// TestSerialsUnique: 100,002 serials from three instances, interleaved, are
// distinct, positive, 160 bits at most and at least 64 bits random.
func TestSerialsUnique(t *testing.T) {
	const n = 33334
	seen := make(map[string]int, 3*n)
	var gens []*serials
	for range 3 {
		s, err := newSerials(nil)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, s)
	}
	for i := range n {
		for g, s := range gens {
			v, err := s.next()
			if err != nil {
				t.Fatal(err)
			}
			if v.Sign() <= 0 || v.BitLen() > 160 || v.BitLen() < 159 {
				t.Fatalf("serial %x has %d bits", v, v.BitLen())
			}
			k := string(v.Bytes())
			if prev, dup := seen[k]; dup {
				t.Fatalf("instance %d repeated a serial of instance %d at %d", g, prev, i)
			}
			seen[k] = g
		}
	}
	if len(seen) != 3*n {
		t.Fatalf("%d distinct", len(seen))
	}
	// The fresh random middle differs even for equal prefix and counter.
	a, _ := gens[0].next()
	gens[0].counter--
	b, _ := gens[0].next()
	if a.Cmp(b) == 0 {
		t.Fatal("the random bits do not change")
	}
}

// TestClockGuard drives the guard with a local HTTP server whose Date
// header is set off by a chosen amount.
func TestClockGuard(t *testing.T) {
	var skew time.Duration
	var mu sync.Mutex
	ref := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		d := time.Now().Add(skew)
		mu.Unlock()
		w.Header().Set("Date", d.UTC().Format(http.TimeFormat))
	}))
	defer ref.Close()
	g := &ClockGuard{Ref: HTTPDate{URL: ref.URL}, Accuracy: time.Second}
	f := newFixture(t, func(c *Config) { c.Clock = g })
	ctx := context.Background()
	if f.a.Ready() == nil {
		t.Fatal("ready before the first check")
	}
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{{0, true}, {10 * time.Second, false}, {-time.Minute, false}, {300 * time.Millisecond, true}} {
		t.Run(fmt.Sprint(tc.skew), func(t *testing.T) {
			mu.Lock()
			skew = tc.skew
			mu.Unlock()
			err := g.Check(ctx)
			if (err == nil) != tc.ok || (f.a.Ready() == nil) != tc.ok {
				t.Fatalf("check %v, ready %v", err, f.a.Ready())
			}
			r, _ := stamp(t, f.a, sha256Req(t, "x"))
			if tc.ok != (r.Status == StatusGranted) || (!tc.ok && r.Fail != FailTimeNotAvailable) {
				t.Fatalf("status %v %v", r.Status, r.Fail)
			}
		})
	}
	t.Run("stale check", func(t *testing.T) {
		later := time.Now().Add(time.Hour)
		g2 := &ClockGuard{Ref: HTTPDate{URL: ref.URL}, Accuracy: time.Second, MaxAge: time.Minute}
		mu.Lock()
		skew = 0
		mu.Unlock()
		if err := g2.Check(ctx); err != nil {
			t.Fatal(err)
		}
		g2.Now = func() time.Time { return later }
		if !errors.Is(g2.Err(), ErrTimeNotAvailable) {
			t.Fatal("a check an hour old still vouches for the clock")
		}
	})
	t.Run("offset file", func(t *testing.T) {
		dir := t.TempDir()
		p := writeFile(t, dir, "offset", []byte("0.000123\n"))
		g3 := &ClockGuard{Ref: OffsetFile{Path: p}, Accuracy: time.Second}
		if err := g3.Check(ctx); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, "offset", []byte("-2.5\n"))
		if err := g3.Check(ctx); !errors.Is(err, ErrTimeNotAvailable) {
			t.Fatalf("2.5 s off with 1 s accuracy: %v", err)
		}
		writeFile(t, dir, "offset", []byte("nonsense"))
		if err := g3.Check(ctx); !errors.Is(err, ErrTimeNotAvailable) {
			t.Fatalf("unreadable offset: %v", err)
		}
	})
}

func TestHTTPHandler(t *testing.T) {
	f := newFixture(t, nil)
	url := f.server(t)
	good := der(t, sha256Req(t, "x"))
	for _, tc := range []struct {
		name   string
		method string
		ctype  string
		body   []byte
		want   int
	}{
		{"good", http.MethodPost, ContentTypeQuery, good, 200},
		{"media type with parameter", http.MethodPost, ContentTypeQuery + "; charset=binary", good, 200},
		{"rejection is still 200", http.MethodPost, ContentTypeQuery, []byte("junk"), 200},
		{"GET", http.MethodGet, "", nil, 405},
		{"PUT", http.MethodPut, ContentTypeQuery, good, 405},
		{"wrong media type", http.MethodPost, "application/octet-stream", good, 415},
		{"no media type", http.MethodPost, "", good, 415},
		{"over 64 KiB", http.MethodPost, ContentTypeQuery, make([]byte, MaxRequestBytes+1), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, url, bytes.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 405 && resp.Header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestGenTimeEncoding(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "20260102030405Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 500000000, time.UTC), "20260102030405.5Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 120999999, time.UTC), "20260102030405.12Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 7000000, time.FixedZone("CET", 3600)), "20260102020405.007Z"},
	} {
		got := formatGenTime(tc.t)
		if got != tc.want {
			t.Errorf("%v: %s, want %s", tc.t, got, tc.want)
		}
		back, ok := parseGenTime(got)
		if !ok || !back.Equal(tc.t.Truncate(time.Millisecond)) {
			t.Errorf("%s parses to %v (%v)", got, back, ok)
		}
	}
	for _, bad := range []string{"20260102030405.50Z", "20260102030405.Z", "20260102030405", "202601020304Z", "20260102030405+0100"} {
		if _, ok := parseGenTime(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestHTTPHandlerRefusals: each way a request is turned away before the
// Authority is answered with its status and reported once with its reason;
// only the request that parses reaches Wrap (the server's audit log) and
// Observe. Admit runs first, whatever the method.
func TestHTTPHandlerRefusals(t *testing.T) {
	f := newFixture(t, nil)
	good := der(t, sha256Req(t, "x"))
	var refused []string
	var wrapped, observed int
	admit := true
	h := NewHTTPHandler(f.a, HTTPOptions{
		MaxBodyBytes: 1024,
		Admit: func(*http.Request) error {
			if !admit {
				return errors.New("limited")
			}
			return nil
		},
		Refused: func(_ *http.Request, reason string) { refused = append(refused, reason) },
		Wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				wrapped++
				if b, _ := io.ReadAll(r.Body); !bytes.Equal(b, good) {
					t.Error("Wrap's request body is not the TimeStampReq")
				}
				r.Body = io.NopCloser(bytes.NewReader(good))
				next.ServeHTTP(w, r)
			})
		},
		Observe: func(*http.Request, Result) { observed++ },
	})
	v2 := bytes.Clone(good)
	if !bytes.Equal(v2[2:5], []byte{2, 1, 1}) {
		t.Fatalf("unexpected request encoding % x", v2[:5])
	}
	// Version 2: well-formed DER, not a version pecet speaks.
	v2[4] = 2
	// A reader of unknown length: the request has no Content-Length.
	chunked := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b)) }
	for _, tc := range []struct {
		name, method, ctype string
		body                io.Reader
		admit               bool
		want                int
		reason              string
	}{
		{"good", http.MethodPost, ContentTypeQuery, bytes.NewReader(good), true, 200, ""},
		{"limited", http.MethodGet, "", nil, false, 429, RefusedRateLimited},
		{"GET", http.MethodGet, "", nil, true, 405, RefusedMethod},
		{"media type", http.MethodPost, "text/plain", bytes.NewReader(good), true, 415, RefusedContentType},
		{"over the cap", http.MethodPost, ContentTypeQuery, bytes.NewReader(make([]byte, 1025)), true, 413, RefusedTooLarge},
		{"over the cap, chunked", http.MethodPost, ContentTypeQuery, chunked(make([]byte, 1025)), true, 413, RefusedTooLarge},
		{"junk", http.MethodPost, ContentTypeQuery, bytes.NewReader([]byte("junk")), true, 200, RefusedMalformed},
		{"version 2", http.MethodPost, ContentTypeQuery, bytes.NewReader(v2), true, 200, RefusedMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused, wrapped, observed, admit = nil, 0, 0, tc.admit
			req := httptest.NewRequest(tc.method, "/tsa", tc.body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("HTTP %d, want %d", rec.Code, tc.want)
			}
			if tc.reason == "" {
				if len(refused) != 0 || wrapped != 1 || observed != 1 {
					t.Fatalf("refused %v, wrapped %d, observed %d", refused, wrapped, observed)
				}
				return
			}
			if len(refused) != 1 || refused[0] != tc.reason || wrapped != 0 || observed != 0 {
				t.Fatalf("refused %v (want %s), wrapped %d, observed %d", refused, tc.reason, wrapped, observed)
			}
			if tc.want == 200 {
				r, err := ParseResponse(rec.Body.Bytes())
				if err != nil || r.Status != StatusRejection {
					t.Fatalf("%v %+v, want a rejection", err, r)
				}
			}
		})
	}
}
