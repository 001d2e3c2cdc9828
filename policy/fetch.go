package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors of fetching.
var (
	// ErrFetch wraps failures to fetch a CRL or an OCSP response.
	ErrFetch = errors.New("policy: revocation fetch failed")
	// ErrFetchRefused: the URL's scheme or host is not allowed, or a
	// redirect leaves the URL's scheme and host (docs/security.md
	// "Fetching CRLs and OCSP responses").
	ErrFetchRefused = errors.New("policy: revocation fetch refused by the fetch rules")
)

// DefaultFetchSchemes are the URL schemes fetched when Fetcher.Schemes is
// empty: CRLs and OCSP responses are signed, so plain HTTP is what RFC
// 5280 and RFC 6960 expect; LDAP and file URLs are never fetched.
var DefaultFetchSchemes = []string{"http"}

// DefaultMaxRedirects bounds the redirects followed in one fetch.
const DefaultMaxRedirects = 3

// Fetcher fetches CRLs from distribution points and asks OCSP responders,
// over plain HTTP (RFC 5280 4.2.1.13, RFC 6960 appendix A). CRLs are cached
// until their nextUpdate, so that a validation with fresh cached data never
// waits on the network; a failed fetch is remembered for RetryAfter so an
// unreachable server does not slow every request.
type Fetcher struct {
	Client *http.Client
	// Timeout bounds one fetch (default 5 s).
	Timeout time.Duration
	// MaxCRLBytes, MaxOCSPBytes bound response bodies.
	MaxCRLBytes  int64
	MaxOCSPBytes int64
	// RetryAfter is how long a failure is remembered (default 1 min).
	RetryAfter time.Duration
	// MaxCacheEntries bounds the CRL cache (default 256).
	MaxCacheEntries int
	Now             func() time.Time
	// Schemes are the URL schemes fetched (default DefaultFetchSchemes:
	// http); "https" may be added.
	Schemes []string
	// Hosts, when not empty, are the only hosts fetched from: "host"
	// (any port), "host:port", or ".example.cz" for the hosts under a
	// domain.
	Hosts []string
	// MaxRedirects bounds the redirects followed, each to the same scheme
	// and host:port only (default DefaultMaxRedirects; negative: none).
	MaxRedirects int

	mu    sync.Mutex
	cache map[string]*crlCacheEntry
	// Fetches counts network fetches (tests and metrics).
	Fetches int
}

type crlCacheEntry struct {
	mu      sync.Mutex // one fetch per URL at a time
	crl     *CRL
	err     error
	fetched time.Time
}

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fetcher) timeout() time.Duration {
	if f.Timeout > 0 {
		return f.Timeout
	}
	return 5 * time.Second
}

// Allowed reports whether the fetch rules allow u (scheme and host).
func (f *Fetcher) Allowed(u *url.URL) bool {
	schemes := f.Schemes
	if len(schemes) == 0 {
		schemes = DefaultFetchSchemes
	}
	if !slices.Contains(schemes, strings.ToLower(u.Scheme)) || u.Host == "" || u.User != nil {
		return false
	}
	if len(f.Hosts) == 0 {
		return true
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range f.Hosts {
		h = strings.ToLower(h)
		switch {
		case strings.HasPrefix(h, "."):
			if strings.HasSuffix(host, h) {
				return true
			}
		case strings.Contains(h, ":"):
			if strings.ToLower(u.Host) == h {
				return true
			}
		case host == h:
			return true
		}
	}
	return false
}

// checkRedirect follows a redirect only to the same scheme and host:port
// as the first request, within MaxRedirects: a CA's server may move a
// file, but must not send pecetd elsewhere.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	max := f.MaxRedirects
	if max == 0 {
		max = DefaultMaxRedirects
	}
	first := via[0].URL
	if len(via) > max || !strings.EqualFold(req.URL.Scheme, first.Scheme) || !strings.EqualFold(req.URL.Host, first.Host) || !f.Allowed(req.URL) {
		return ErrFetchRefused
	}
	return nil
}

func (f *Fetcher) get(ctx context.Context, rawURL string, max int64, req []byte) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || !f.Allowed(u) {
		return nil, ErrFetchRefused
	}
	if err := BudgetFrom(ctx).Step(); err != nil {
		return nil, err
	}
	url := rawURL
	call := ctx
	// failed keeps the call's own end (deadline, cancel) and a refused
	// redirect recognisable; anything else is the server's failure, text
	// for the log only.
	failed := func(err error) error {
		switch {
		case call.Err() != nil:
			return call.Err()
		case errors.Is(err, ErrFetchRefused):
			return fmt.Errorf("%w: %s: redirect", ErrFetchRefused, url)
		}
		//nolint:errorlint // the cause is for the log: wrapped, IsStop would take the fetch's own timeout for the call's deadline
		return fmt.Errorf("%w: %s: %v", ErrFetch, url, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	method, body := http.MethodGet, io.Reader(nil)
	if req != nil {
		method, body = http.MethodPost, bytes.NewReader(req)
	}
	hr, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if req != nil {
		hr.Header.Set("Content-Type", "application/ocsp-request")
	}
	c := &http.Client{Timeout: f.timeout()}
	if f.Client != nil {
		cc := *f.Client
		c = &cc
	}
	c.CheckRedirect = f.checkRedirect
	f.mu.Lock()
	f.Fetches++
	f.mu.Unlock()
	resp, err := c.Do(hr)
	if err != nil {
		return nil, failed(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: HTTP %d", ErrFetch, url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, failed(err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s: response larger than %d bytes", ErrFetch, url, max)
	}
	if err := BudgetFrom(call).Bytes(len(data)); err != nil {
		return nil, err
	}
	return data, nil
}

// CRL returns the CRL at url, from the cache while it is fresh.
func (f *Fetcher) CRL(ctx context.Context, url string) (*CRL, error) {
	f.mu.Lock()
	if f.cache == nil {
		f.cache = map[string]*crlCacheEntry{}
	}
	e, ok := f.cache[url]
	if !ok {
		max := f.MaxCacheEntries
		if max <= 0 {
			max = 256
		}
		if len(f.cache) >= max {
			for k := range f.cache { // drop an arbitrary entry
				delete(f.cache, k)
				break
			}
		}
		e = &crlCacheEntry{}
		f.cache[url] = e
	}
	f.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := f.now()
	if e.crl != nil && (e.crl.RL.NextUpdate.IsZero() || now.Before(e.crl.RL.NextUpdate)) {
		return e.crl, nil
	}
	retry := f.RetryAfter
	if retry <= 0 {
		retry = time.Minute
	}
	if e.err != nil && now.Sub(e.fetched) < retry {
		return nil, e.err
	}
	max := f.MaxCRLBytes
	if max <= 0 {
		max = MaxCRLBytes
	}
	data, err := f.get(ctx, url, max, nil)
	if IsStop(err) {
		return nil, err // this call's budget or deadline, not the server's fault
	}
	e.fetched = now
	if err == nil {
		var crl *CRL
		if crl, err = ParseCRL(data); err == nil {
			e.crl, e.err = crl, nil
			return crl, nil
		}
	}
	e.err = err
	if e.crl != nil {
		return e.crl, nil // stale, but the checks will say it expired
	}
	return nil, err
}

// CRLsFor fetches the CRLs of c's HTTP distribution points.
func (f *Fetcher) CRLsFor(ctx context.Context, c *x509.Certificate) []*CRL {
	out, _ := f.CRLsForStatus(ctx, c)
	return out
}

// CRLsForStatus fetches the CRLs of c's distribution points that the
// fetch rules allow, and summarises what went wrong in fixed words for a
// verdict: never a URL or an error text, which a certificate's issuer
// chooses (docs/security.md "Fetching CRLs and OCSP responses").
func (f *Fetcher) CRLsForStatus(ctx context.Context, c *x509.Certificate) ([]*CRL, string) {
	var out []*CRL
	var problem string
	for _, u := range c.CRLDistributionPoints {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			continue // LDAP is not supported
		}
		crl, err := f.CRL(ctx, u)
		if err == nil {
			out = append(out, crl)
			continue
		}
		if problem == "" {
			problem = fetchSummary("CRL distribution point", err)
		}
	}
	return out, problem
}

// fetchSummary is the fixed text of a fetch failure for a verdict.
func fetchSummary(what string, err error) string {
	switch {
	case IsStop(err):
		return what + " not fetched: the call's work budget or deadline ran out"
	case errors.Is(err, ErrFetchRefused):
		return what + " not fetched: its URL or a redirect is not allowed by the fetch rules"
	case errors.Is(err, ErrMalformedCRL):
		return what + " answered with a malformed CRL"
	}
	return what + " unreachable"
}

// errOCSPParse: x/crypto/ocsp refused the response (its error texts are
// not for verdicts).
var errOCSPParse = errors.New("OCSP response")

// OCSPStatus asks c's OCSP responder and checks the answer under rules
// (nil: the defaults; ocsp.go). ok is false when no answer could be used;
// st.unknown then says why.
func (f *Fetcher) OCSPStatus(ctx context.Context, c, issuer *x509.Certificate, at time.Time, rules *ocspRules) (revStatus, bool) {
	if len(c.OCSPServer) == 0 {
		return revStatus{unknown: "no OCSP responder"}, false
	}
	if rules == nil {
		rules = &ocspRules{}
	}
	var nonce []byte
	if !rules.noNonce {
		nonce = make([]byte, 16)
		if _, err := rand.Read(nonce); err != nil {
			return revStatus{unknown: "no randomness for the OCSP nonce"}, false
		}
	}
	req, err := ocspRequest(c, issuer, nonce)
	if err != nil {
		return revStatus{unknown: "cannot build the OCSP request"}, false
	}
	max := f.MaxOCSPBytes
	if max <= 0 {
		max = 64 << 10
	}
	var last string
	for _, url := range c.OCSPServer {
		if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
			continue
		}
		data, err := f.get(ctx, url, max, req)
		if err != nil {
			last = fetchSummary("OCSP responder", err)
			continue
		}
		if err := BudgetFrom(ctx).Signature(); err != nil {
			last = fetchSummary("OCSP responder", err)
			break
		}
		now := rules.now
		if now.IsZero() {
			now = f.now()
		}
		st, err := checkOCSP(data, c, issuer, nonce, at, now, rules)
		if err != nil {
			// checkOCSP's own texts are fixed; the parser's are not.
			if errors.Is(err, errOCSPParse) {
				last = "the OCSP response is malformed or not signed by the issuer"
			} else {
				last = err.Error()
			}
			continue
		}
		st.evidence = append(st.evidence, UsedObject{Kind: ObjectOCSPResponse, Raw: data})
		return st, true
	}
	if last == "" {
		last = "no HTTP OCSP responder"
	}
	return revStatus{unknown: last}, false
}
