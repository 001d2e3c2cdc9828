package server

import (
	"os"
	"sync"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// firstHeldSync counts the audit log's fsyncs and holds the first one
// until released.
type firstHeldSync struct {
	mu      sync.Mutex
	n       int
	started chan struct{}
	gate    chan struct{}
}

func (c *firstHeldSync) sync(f *os.File) error {
	c.mu.Lock()
	c.n++
	first := c.n == 1
	c.mu.Unlock()
	if first {
		close(c.started)
		<-c.gate
	}
	return f.Sync()
}

// TestConcurrentSignsShareFsync: N concurrent Sign calls over gRPC, each
// durable before its result leaves, cost at most two audit fsyncs under
// audit.sync event and begin: the one under way when the calls' lines are
// written, and one more that covers all of them (group commit; without it
// N). Counted through the fsync hook, not timed.
func TestConcurrentSignsShareFsync(t *testing.T) {
	const calls = 12
	for _, policy := range []audit.SyncPolicy{audit.SyncEvent, audit.SyncBegin} {
		t.Run(string(policy), func(t *testing.T) {
			c := &firstHeldSync{started: make(chan struct{}), gate: make(chan struct{})}
			f := newFixtureOpts(t, fixtureOpts{auditSync: policy, auditSyncFile: c.sync, auditFlush: time.Hour}) // no flush fsyncs of its own
			sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
			ctx := ctxT(t)
			req := &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Digest{Digest: make([]byte, 32)}}
			// The log's own lines (genesis, start) come before the calls'.
			base, _ := f.srv.d.Audit.Head()
			errs := make(chan error, calls)
			for range calls {
				go func() { _, err := sc.Sign(ctx, req); errs <- err }()
			}
			<-c.started
			// Every call's begin and end line is in the file while the
			// first fsync is held: under begin too, End appends its line
			// before it waits for the begin line's fsync. Counting only
			// begin lines' worth under begin let a call whose end line
			// came early stand in for one not yet begun, whose begin line
			// then needed a third fsync (seen once under load).
			want := base + 2*calls
			testtool.Eventually(t, 30*time.Second, func() bool {
				seq, _ := f.srv.d.Audit.Head()
				return seq >= want
			}, "every call's lines in the file")
			close(c.gate)
			for range calls {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			c.mu.Lock()
			n := c.n
			c.mu.Unlock()
			if n > 2 {
				t.Errorf("%d fsyncs for %d concurrent Sign calls, want at most 2", n, calls)
			}
		})
	}
}
