package tsa

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
)

// Media types of the RFC 3161 HTTP transport (section 3.4).
const (
	ContentTypeQuery = "application/timestamp-query"
	ContentTypeReply = "application/timestamp-reply"
)

// Reasons a request to the HTTP endpoint is answered without reaching the
// Authority (HTTPOptions.Refused; the server's metric label).
const (
	RefusedRateLimited = "rate_limited" // HTTPOptions.Admit said no: 429
	RefusedMethod      = "method"       // not POST: 405
	RefusedContentType = "content_type" // not ContentTypeQuery: 415
	RefusedTooLarge    = "too_large"    // body over the cap: 413
	RefusedBody        = "body"         // the body could not be read (read timeout, client gone): 400
	RefusedMalformed   = "malformed"    // not a DER TimeStampReq: an RFC 3161 rejection (badDataFormat, badRequest)
)

// HTTPOptions connect the handler to the server around it.
type HTTPOptions struct {
	// MaxBodyBytes bounds the body; 0 or more than MaxRequestBytes is
	// MaxRequestBytes.
	MaxBodyBytes int64
	// Admit, when set, is asked first for every request, whatever its
	// method (rate limits); an error answers 429 with Retry-After.
	Admit func(*http.Request) error
	// Refused, when set, sees every request answered without reaching the
	// Authority, with one of the Refused* reasons.
	Refused func(r *http.Request, reason string)
	// Wrap, when set, wraps the issuing of a request that parsed (the audit
	// log): the wrapped handler's r.Body holds the request's DER, and its
	// response is the TimeStampResp.
	Wrap func(http.Handler) http.Handler
	// Observe, when set, sees every answer of the Authority.
	Observe func(*http.Request, Result)
}

// Handler serves RFC 3161 over HTTP with HTTPOptions{Observe: observe}.
func Handler(a *Authority, observe func(*http.Request, Result)) http.Handler {
	return NewHTTPHandler(a, HTTPOptions{Observe: observe})
}

// NewHTTPHandler serves RFC 3161 over HTTP: POST with ContentTypeQuery,
// answered with ContentTypeReply and status 200, also for a rejection (the
// status is inside the TimeStampResp). The checks run cheapest first, and
// only a request that passes them all and parses reaches the Authority
// (and o.Wrap): admission (429), the method (405), the media type (415),
// the body's size (413) and readability (400), the DER (an RFC 3161
// rejection, badDataFormat). A request refused by any of them costs no
// token operation and no audit line; o.Refused counts it.
func NewHTTPHandler(a *Authority, o HTTPOptions) http.Handler {
	limit := o.MaxBodyBytes
	if limit <= 0 || limit > MaxRequestBytes {
		limit = MaxRequestBytes
	}
	refused := func(r *http.Request, reason string) {
		if o.Refused != nil {
			o.Refused(r, reason)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.Admit != nil {
			if err := o.Admit(r); err != nil {
				refused(r, RefusedRateLimited)
				w.Header().Set("Retry-After", "1")
				http.Error(w, "too many time-stamp requests; retry later", http.StatusTooManyRequests)
				return
			}
		}
		if r.Method != http.MethodPost {
			refused(r, RefusedMethod)
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST with "+ContentTypeQuery, http.StatusMethodNotAllowed)
			return
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != ContentTypeQuery {
			refused(r, RefusedContentType)
			http.Error(w, "Content-Type must be "+ContentTypeQuery, http.StatusUnsupportedMediaType)
			return
		}
		if r.ContentLength > limit {
			// Refused unread; the server closes the connection rather than
			// read the rest.
			refused(r, RefusedTooLarge)
			w.Header().Set("Connection", "close")
			http.Error(w, "the request is larger than "+strconv.FormatInt(limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		der, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				refused(r, RefusedTooLarge)
				http.Error(w, "the request is larger than "+strconv.FormatInt(limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
				return
			}
			refused(r, RefusedBody)
			http.Error(w, "cannot read the request body", http.StatusBadRequest)
			return
		}
		req, err := ParseRequest(der)
		if err != nil {
			var rj *Rejection
			if !errors.As(err, &rj) {
				rj = reject(FailBadDataFormat, "malformed TimeStampReq")
			}
			refused(r, RefusedMalformed)
			writeReply(w, RejectionResponse(rj))
			return
		}
		var issue http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			resp, res := a.Stamp(r.Context(), req)
			if o.Observe != nil {
				o.Observe(r, res)
			}
			writeReply(w, resp)
		})
		if o.Wrap != nil {
			issue = o.Wrap(issue)
		}
		r.Body = io.NopCloser(bytes.NewReader(der))
		issue.ServeHTTP(w, r)
	})
}

func writeReply(w http.ResponseWriter, resp []byte) {
	w.Header().Set("Content-Type", ContentTypeReply)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	_, _ = w.Write(resp)
}
