package tsa

import (
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

// Handler serves RFC 3161 over HTTP: POST with ContentTypeQuery, answered
// with ContentTypeReply and status 200, also for a rejection (the status
// is inside the TimeStampResp). Another method is 405, another media type
// 415, a body over MaxRequestBytes 400, before anything is parsed or
// signed. observe, when set, sees every answer (logging, metrics).
func Handler(a *Authority, observe func(*http.Request, Result)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST with "+ContentTypeQuery, http.StatusMethodNotAllowed)
			return
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != ContentTypeQuery {
			http.Error(w, "Content-Type must be "+ContentTypeQuery, http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "the request is larger than "+strconv.Itoa(MaxRequestBytes)+" bytes", http.StatusBadRequest)
				return
			}
			http.Error(w, "cannot read the request body", http.StatusBadRequest)
			return
		}
		resp, res := a.Respond(r.Context(), body)
		if observe != nil {
			observe(r, res)
		}
		w.Header().Set("Content-Type", ContentTypeReply)
		w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
		_, _ = w.Write(resp)
	})
}
