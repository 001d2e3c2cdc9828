package audit

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// countingSync counts fsyncs and holds the first one until released, so
// that a test can have every writer's line in the file while one fsync is
// under way, without relying on timing.
type countingSync struct {
	mu      sync.Mutex
	n       int
	started chan struct{} // closed when the first fsync begins
	gate    chan struct{} // the first fsync waits until it is closed
}

func newCountingSync() *countingSync {
	return &countingSync{started: make(chan struct{}), gate: make(chan struct{})}
}

func (c *countingSync) sync(f *os.File) error {
	c.mu.Lock()
	c.n++
	first := c.n == 1
	c.mu.Unlock()
	if first {
		close(c.started)
		<-c.gate
	}
	return dataSync(f)
}

func (c *countingSync) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestGroupCommitSharesFsync: N concurrent key operations share fsyncs
// under every policy that syncs. While one fsync is held, all N writers
// put their lines; when it ends, a single further fsync covers them all,
// so N operations cost at most 2 fsyncs (one each without group commit).
// Counted through the SyncFile hook, not timed.
func TestGroupCommitSharesFsync(t *testing.T) {
	const writers = 16
	op := Event{Caller: "client", Role: "client", RPC: pecetv1.SignService_Sign_FullMethodName, Key: "k"}
	for _, tt := range []struct {
		name  string
		sync  SyncPolicy
		lines int // lines each writer puts
		run   func(l *Log) error
	}{
		{"event: Begin and End (key operations)", SyncEvent, 2, func(l *Log) error {
			b, err := l.Begin(op)
			if err != nil {
				return err
			}
			return l.End(b, op)
		}},
		{"event: Append and Write (key lifecycle)", SyncEvent, 2, func(l *Log) error {
			if err := l.Append(op); err != nil {
				return err
			}
			return l.Write(op)
		}},
		{"event: Write (denied lines)", SyncEvent, 1, func(l *Log) error { return l.Write(op) }},
		{"begin: Begin and End (write-ahead)", SyncBegin, 2, func(l *Log) error {
			b, err := l.Begin(op)
			if err != nil {
				return err
			}
			return l.End(b, op)
		}},
		{"begin: BeginAhead and End (streams)", SyncBegin, 2, func(l *Log) error {
			b, err := l.BeginAhead(op)
			if err != nil {
				return err
			}
			return l.End(b, op)
		}},
		{"event: BeginAhead and End (streams)", SyncEvent, 2, func(l *Log) error {
			b, err := l.BeginAhead(op)
			if err != nil {
				return err
			}
			return l.End(b, op)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newCountingSync()
			// The flush loop (begin) must not add fsyncs of its own here.
			l := openT(t, Options{File: filepath.Join(t.TempDir(), "audit.log"), Sync: tt.sync, SyncFile: c.sync, FlushInterval: time.Hour})
			errs := make(chan error, writers)
			for range writers {
				go func() { errs <- tt.run(l) }()
			}
			<-c.started
			testtool.Eventually(t, 30*time.Second, func() bool {
				seq, _ := l.Head()
				return seq == uint64(writers*tt.lines)
			}, "every writer's lines in the file")
			close(c.gate)
			for range writers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if n := c.count(); n > 2 {
				t.Errorf("%d fsyncs for %d concurrent writers, want at most 2 (group commit)", n, writers)
			}
		})
	}
}
