package server

import (
	"net/http"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/ratelimit"
	"github.com/pecet-hsm/pecet/tsa"
)

// tsaLimiters builds the POST /tsa limiters from http.tsa: a bounded table
// of per-address buckets and one bucket for all clients. A zero rate is no
// limiter (tests; pecetd's config always sets both).
func tsaLimiters(c config.HTTPTSA, now func() time.Time) (clients, all *ratelimit.Limiter) {
	if c.RatePerClient > 0 {
		maxClients := c.MaxClients
		if maxClients <= 0 {
			maxClients = config.DefaultTSAMaxClients
		}
		clients = ratelimit.NewBounded(c.RatePerClient, c.BurstPerClient, maxClients, now)
	}
	if c.Rate > 0 {
		all = ratelimit.New(c.Rate, c.Burst, now)
	}
	return clients, all
}

// tsaHTTP is POST /tsa: the rate limits first (per client address, then
// for all clients), then the cheap checks and the parse (tsa.NewHTTPHandler);
// only a well-formed TimeStampReq reaches the audit log (auditHTTP) and the
// token. Everything turned away is counted by reason in
// pecet_tsa_refused_total and never audited line by line: the endpoint has
// no client certificate, and an audit line per request let anyone fill the
// audit disk, which stops every key operation (docs/security.md "Network,
// limits and identities").
func (s *Server) tsaHTTP(a *tsa.Authority) http.Handler {
	return tsa.NewHTTPHandler(a, tsa.HTTPOptions{
		MaxBodyBytes: s.d.HTTP.MaxBodyBytes,
		Admit: func(r *http.Request) error {
			// The address the connection comes from; X-Forwarded-For is
			// not trusted (anyone can write it). Behind a proxy that hides
			// client addresses the per-client limit is the proxy's.
			if err := s.tsaClients.Allow(ratelimit.AddrKey(r.RemoteAddr)); err != nil {
				return err
			}
			return s.tsaAll.Allow("")
		},
		Refused: func(_ *http.Request, reason string) { s.d.Metrics.TSARefused.WithLabelValues(reason).Inc() },
		Wrap: func(h http.Handler) http.Handler {
			return s.auditHTTP("POST /tsa", tsa.MaxRequestBytes, h)
		},
		Observe: func(r *http.Request, res tsa.Result) { s.observeTSA(r.Context(), "http", res) },
	})
}

// HTTPServer is the HTTP listener's server for HTTP(), with every timeout
// of http: set and every request body capped at http.max_body_bytes. With
// ReadHeaderTimeout alone, a client that sent its headers and then its
// body a byte a minute (or never) held a connection and a goroutine for
// ever; ReadTimeout bounds the whole request, WriteTimeout the response
// (a reader that never reads), IdleTimeout a kept-alive connection that
// sends nothing more (docs/security.md "Network, limits and identities").
func (s *Server) HTTPServer() *http.Server {
	h := s.d.HTTP
	mux := s.HTTP()
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, h.MaxBodyBytes)
			mux.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: h.ReadHeaderTimeout,
		ReadTimeout:       h.ReadTimeout,
		WriteTimeout:      h.WriteTimeout,
		IdleTimeout:       h.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// maxHeaderBytes bounds a request's headers: health checks, Prometheus and
// RFC 3161 clients send a few hundred bytes; net/http's default is 1 MiB.
const maxHeaderBytes = 16 << 10
