package server

import (
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestWatchEndsOnDrain: a health Watch, overall and per service, first
// receives NOT_SERVING when the drain begins, then ends with Unavailable,
// so that it does not hold the graceful stop. A Watch opened during the
// drain gets NOT_SERVING and ends the same way.
func TestWatchEndsOnDrain(t *testing.T) {
	f := newFixture(t)
	f.srv.SetServing(true)
	hc := healthpb.NewHealthClient(f.dial(t, "stranger"))
	var watches []healthpb.Health_WatchClient
	for _, svc := range []string{"", "pecet.v1.SignService"} {
		w, err := hc.Watch(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Watch(%q): %v %v", svc, r, err)
		}
		watches = append(watches, w)
	}
	f.srv.Shutdown()
	late, err := hc.Watch(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range append(watches, late) {
		if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("watch %d after Shutdown: %v %v, want NOT_SERVING", i, r, err)
		}
		_, err := w.Recv()
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("watch %d: %v, want Unavailable", i, err)
		}
	}
}
