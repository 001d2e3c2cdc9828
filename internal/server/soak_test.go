package server

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/faultinject"
)

// TestSoak runs a mixed load (sign, verify of good and of altered content,
// list and get keys) against the in-process server on a real SoftHSM token
// behind internal/faultinject, injecting a fault every few seconds: lost
// sessions, a removed token, a slow token. It checks that every request gets
// exactly one answer, that no answer is wrong (each signature verifies
// VALID over its own request's data and INVALID over other data), that
// errors happen only while a fault is active or being recovered from, and
// that goroutines and heap come back. Set PECET_SOAK to its duration
// (PECET_SOAK=10m); docs/reliability.md has the results.
func TestSoak(t *testing.T) {
	v := os.Getenv("PECET_SOAK")
	if v == "" {
		t.Skip("set PECET_SOAK=10m to run the soak test")
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("PECET_SOAK: %v", err)
	}
	fx, f := faultyFixture(t, nil)
	cc := fx.dial(t, "client")
	sc := pecetv1.NewSignServiceClient(cc)
	kc := pecetv1.NewKeyServiceClient(cc)

	// Fault windows: a request that fails must have overlapped one. A
	// window is open from its injection until /readyz says ready again
	// plus faultinject.Grace.
	var (
		winMu   sync.Mutex
		windows = map[int]faultinject.Window{}
	)
	setWindow := func(w faultinject.Window) {
		if w.End.IsZero() {
			w.End = w.Start.Add(time.Hour)
		}
		winMu.Lock()
		windows[w.N] = w
		winMu.Unlock()
	}
	inWindow := func(from, to time.Time) bool {
		winMu.Lock()
		defer winMu.Unlock()
		for _, w := range windows {
			if from.Before(w.End) && to.After(w.Start) {
				return true
			}
		}
		return false
	}

	type tally struct{ sent, answered, ok, faultErrs, wrong, badErrs atomic.Int64 }
	var n tally
	var badMu sync.Mutex
	var bad []string
	fail := func(format string, a ...any) {
		badMu.Lock()
		if len(bad) < 20 {
			bad = append(bad, fmt.Sprintf(format, a...))
		}
		badMu.Unlock()
	}

	// Warm up (the connection's goroutines start with its first call)
	// before taking the goroutine and heap baselines.
	if _, err := kc.ListKeys(ctxT(t), &pecetv1.ListKeysRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	goroutines := runtime.NumGoroutine()
	var heapBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapBefore)

	// One request, checked. Returns when answered.
	do := func(worker, i int) {
		n.sent.Add(1)
		start := time.Now()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		data := []byte(fmt.Sprintf("<PRIHL worker=%d req=%d/>", worker, i))
		var err error
		switch i % 4 {
		case 0, 1: // sign, then verify over its own data and over another's
			var resp *pecetv1.SignResponse
			resp, err = sc.Sign(cctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
			if err != nil {
				break
			}
			var good, other *pecetv1.VerifyResponse
			good, err = sc.Verify(cctx, &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}})
			if err != nil {
				break
			}
			other, err = sc.Verify(cctx, &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: append(data, ' ')}})
			if err != nil {
				break
			}
			if good.GetVerdict().GetStatus() != pecetv1.Verdict_VALID || other.GetVerdict().GetStatus() != pecetv1.Verdict_INVALID {
				n.wrong.Add(1)
				fail("worker %d req %d: verdicts %v over its data, %v over other data", worker, i, good.GetVerdict().GetStatus(), other.GetVerdict().GetStatus())
			}
		case 2:
			var resp *pecetv1.ListKeysResponse
			resp, err = kc.ListKeys(cctx, &pecetv1.ListKeysRequest{})
			if err == nil && len(resp.GetKeys()) != 1 {
				n.wrong.Add(1)
				fail("ListKeys as client: %d keys, want 1", len(resp.GetKeys()))
			}
		case 3:
			var key *pecetv1.Key
			key, err = kc.GetKey(cctx, &pecetv1.GetKeyRequest{Alias: "client-sign"})
			if err == nil && key.GetAlias() != "client-sign" {
				n.wrong.Add(1)
				fail("GetKey(client-sign) = %q", key.GetAlias())
			}
		}
		n.answered.Add(1)
		switch code := status.Code(err); {
		case err == nil:
			n.ok.Add(1)
		case (code == codes.Unavailable || code == codes.ResourceExhausted || code == codes.DeadlineExceeded) && inWindow(start, time.Now()):
			n.faultErrs.Add(1)
		default:
			n.badErrs.Add(1)
			fail("worker %d req %d at %s: %v (outside any fault window or an unexpected code)", worker, i, start.Format(time.TimeOnly), err)
		}
	}

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				do(w, i)
			}
		})
	}
	// The fault injector: the soak's schedule, one fault every 3 s, in
	// turn (faultinject.Kinds, as pecetd -tags faultinject injects them).
	sched, err := faultinject.ParseSchedule("3s")
	if err != nil {
		t.Fatal(err)
	}
	injected := map[string]int{}
	ready := func(context.Context) error {
		if code, _ := fx.httpGet(t, "/readyz"); code != 200 {
			return fmt.Errorf("/readyz: %d", code)
		}
		return nil
	}
	sched.Run(ctx, f, ready, faultinject.Hooks{Started: setWindow, Ended: func(w faultinject.Window) {
		setWindow(w)
		injected[w.What]++
	}})
	wg.Wait()

	var heapAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapAfter)
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("soak %v: %d requests, %d answered, %d ok, %d failed during faults, %d failed otherwise, %d wrong answers; faults %v; token C_Login calls %d; heap in use %d -> %d KiB; goroutines %d -> %d",
		dur, n.sent.Load(), n.answered.Load(), n.ok.Load(), n.faultErrs.Load(), n.badErrs.Load(), n.wrong.Load(),
		injected, f.Logins.Load(), heapBefore.HeapInuse>>10, heapAfter.HeapInuse>>10, goroutines, runtime.NumGoroutine())
	for _, b := range bad {
		t.Error(b)
	}
	if n.sent.Load() != n.answered.Load() {
		t.Errorf("%d requests sent, %d answered", n.sent.Load(), n.answered.Load())
	}
	if n.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
	if g := runtime.NumGoroutine(); g > goroutines+5 {
		t.Errorf("goroutines %d -> %d", goroutines, g)
	}
	if heapAfter.HeapInuse > 2*heapBefore.HeapInuse+32<<20 {
		t.Errorf("heap in use grew from %d to %d KiB", heapBefore.HeapInuse>>10, heapAfter.HeapInuse>>10)
	}
}
