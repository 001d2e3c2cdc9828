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
	"strings"
	"sync"
	"time"
)

// ErrFetch wraps failures to fetch a CRL or an OCSP response.
var ErrFetch = errors.New("policy: revocation fetch failed")

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

func (f *Fetcher) get(ctx context.Context, url string, max int64, req []byte) ([]byte, error) {
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
	c := f.Client
	if c == nil {
		c = &http.Client{Timeout: f.timeout()}
	}
	f.mu.Lock()
	f.Fetches++
	f.mu.Unlock()
	resp, err := c.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetch, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: HTTP %d", ErrFetch, url, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetch, url, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s: response larger than %d bytes", ErrFetch, url, max)
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
	var out []*CRL
	for _, u := range c.CRLDistributionPoints {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			continue // LDAP is not supported
		}
		if crl, err := f.CRL(ctx, u); err == nil {
			out = append(out, crl)
		}
	}
	return out
}

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
			last = err.Error()
			continue
		}
		st, err := checkOCSP(data, c, issuer, nonce, at, f.now(), rules)
		if err != nil {
			last = err.Error()
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
