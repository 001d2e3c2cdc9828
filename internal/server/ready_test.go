package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/softhsm"
)

// TestReadyzDuringDrain: once Shutdown begins the drain, /readyz says 503
// (new calls go elsewhere) while /healthz stays 200 (no restart).
func TestReadyzDuringDrain(t *testing.T) {
	ks := softhsm.NewToken(t)
	s := New(Deps{Keys: ks, Metrics: metrics.New(ks.PoolStats)})
	get := func(path string) int {
		rec := httptest.NewRecorder()
		s.HTTP().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if c := get("/readyz"); c != http.StatusOK {
		t.Fatalf("readyz before drain: %d", c)
	}
	s.Shutdown()
	if c := get("/readyz"); c != http.StatusServiceUnavailable {
		t.Fatalf("readyz during drain: %d, want 503", c)
	}
	if c := get("/healthz"); c != http.StatusOK {
		t.Fatalf("healthz during drain: %d, want 200", c)
	}
}
