package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// TestBatchOneFsync: a batch of N items costs one fsync, whatever N, under
// the policies that fsync (counted through Options.SyncFile), and every
// item line is in the chain with its batch id and position.
func TestBatchOneFsync(t *testing.T) {
	for _, tt := range []struct {
		name   string
		sync   SyncPolicy
		stream bool // WriteItems (a stream's batch) instead of Begin+EndBatch
		want   int64
	}{
		{"event", SyncEvent, false, 1},
		{"begin", SyncBegin, false, 1},
		{"none", SyncNone, false, 0},
		{"event stream", SyncEvent, true, 1},
		{"begin stream", SyncBegin, true, 1},
		{"none stream", SyncNone, true, 0},
	} {
		for _, n := range []int{1, 10, 1000} {
			t.Run(tt.name+"/"+strconv.Itoa(n), func(t *testing.T) {
				var syncs atomic.Int64
				path := filepath.Join(t.TempDir(), "audit.log")
				l := openT(t, Options{File: path, Sync: tt.sync, FlushInterval: 1 << 40,
					SyncFile: func(f *os.File) error { syncs.Add(1); return f.Sync() }})
				items := make([]Event, n)
				for i := range items {
					items[i] = Event{Phase: PhaseItem, Call: "c" + strconv.Itoa(i), Caller: "client", RPC: pecetv1.SignService_SignDigests_FullMethodName,
						Key: "client-sign", Version: 1, InputSHA256: InputHash([]byte{byte(i)}), Outcome: OutcomeOK, Batch: "b1", Item: i + 1}
				}
				if tt.stream {
					if err := l.WriteItems(items); err != nil {
						t.Fatal(err)
					}
				} else {
					begin := Event{Phase: PhaseBegin, Call: "b1", Caller: "client", RPC: pecetv1.SignService_SignDigests_FullMethodName}
					b, err := l.Begin(begin)
					if err != nil {
						t.Fatal(err)
					}
					end := begin
					end.Phase, end.Outcome = PhaseEnd, OutcomeOK
					if err := l.EndBatch(b, items, end); err != nil {
						t.Fatal(err)
					}
				}
				if got := syncs.Load(); got != tt.want {
					t.Errorf("%d fsyncs for %d items, want %d", got, n, tt.want)
				}
				l.Close()
				res, err := verifyFiles(path)
				if err != nil {
					t.Fatal(err)
				}
				want := n
				if !tt.stream {
					want += 2
				}
				if res.Lines != want {
					t.Fatalf("%d lines, want %d", res.Lines, want)
				}
				var seen int
				for _, line := range lines(t, path) {
					e, _, err := ParseLine([]byte(strings.TrimSuffix(line, "\n")))
					if err != nil {
						t.Fatal(err)
					}
					if e.Phase == PhaseItem {
						seen++
						if e.Batch != "b1" || e.Item != seen {
							t.Fatalf("item line %d: batch %q item %d", seen, e.Batch, e.Item)
						}
					}
				}
				if seen != n {
					t.Fatalf("%d item lines, want %d", seen, n)
				}
			})
		}
	}
}

// TestBatchFailedFsyncWithholds: when the one fsync of a batch fails,
// EndBatch and WriteItems say so (the results must not leave).
func TestBatchFailedFsyncWithholds(t *testing.T) {
	boom := errors.New("disk gone")
	for _, stream := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "audit.log")
		l := openT(t, Options{File: path, Sync: SyncEvent, SyncFile: func(*os.File) error { return boom }})
		items := []Event{{Phase: PhaseItem, Batch: "b", Item: 1}, {Phase: PhaseItem, Batch: "b", Item: 2}}
		var err error
		if stream {
			err = l.WriteItems(items)
		} else {
			b, berr := l.Begin(Event{Phase: PhaseBegin, Call: "b"})
			if berr != nil {
				t.Fatal(berr)
			}
			err = l.EndBatch(b, items, Event{Phase: PhaseEnd, Call: "b"})
		}
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, boom) {
			t.Errorf("stream=%v: %v, want ErrUnavailable", stream, err)
		}
	}
}
