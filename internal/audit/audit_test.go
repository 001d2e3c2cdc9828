package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

func openT(t *testing.T, o Options) *Log {
	t.Helper()
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func writeN(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if err := l.Write(Event{Phase: PhaseBegin, Caller: "officer", Role: "officer", RPC: pecetv1.KeyService_RotateKey_FullMethodName,
			Key: "client-sign", Version: i, InputSHA256: InputHash([]byte{byte(i)})}); err != nil {
			t.Fatal(err)
		}
	}
}

func verifyFiles(paths ...string) (Result, error) {
	var fs []File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return Result{}, err
		}
		fs = append(fs, File{Name: filepath.Base(p), R: bytes.NewReader(b)})
	}
	return Verify(fs...)
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestChainAndTamper(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openT(t, Options{File: path})
	writeN(t, l, 6)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := verifyFiles(path)
	if err != nil || res.Lines != 6 || res.FirstSeq != 1 || res.LastSeq != 6 {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
	orig := lines(t, path)
	for i := range orig {
		orig[i] = strings.TrimSuffix(orig[i], "\n")
	}
	edit := func(s string) string { return strings.Replace(s, `"version":2`, `"version":3`, 1) }
	cases := []struct {
		name     string
		lines    []string
		wantLine int
		want     string
	}{
		{"removed line", []string{orig[0], orig[1], orig[3], orig[4], orig[5]}, 3, "removed or reordered"},
		{"removed first line", orig[1:], 0, ""}, // a later start is a valid (partial) chain
		{"reordered", []string{orig[0], orig[2], orig[1], orig[3], orig[4], orig[5]}, 2, "removed or reordered"},
		{"edited line", []string{orig[0], orig[1], edit(orig[2]), orig[3], orig[4], orig[5]}, 3, "edited"},
		{"edited with recomputed hash", []string{orig[0], orig[1], rehash(t, edit(orig[2])), orig[3], orig[4], orig[5]}, 4, "does not follow"},
		{"garbage line", []string{orig[0], "not json", orig[2]}, 2, "malformed"},
		{"seq rewritten", []string{orig[0], rehash(t, strings.Replace(orig[1], `"seq":2`, `"seq":1`, 1))}, 2, "follows seq 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "tampered.log")
			if err := os.WriteFile(p, []byte(strings.Join(c.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := verifyFiles(p)
			if c.wantLine == 0 {
				if err != nil {
					t.Fatalf("want ok, got %v", err)
				}
				return
			}
			var be *BrokenError
			if !errors.As(err, &be) || be.Line != c.wantLine || !strings.Contains(be.Error(), c.want) {
				t.Fatalf("want line %d %q, got %v", c.wantLine, c.want, err)
			}
		})
	}
}

// rehash recomputes a line's own hash, as a careful forger would.
func rehash(t *testing.T, line string) string {
	t.Helper()
	i := strings.LastIndex(line, hashKey)
	body := line[:i] + "}"
	return line[:i] + hashKey + InputHash([]byte(body)) + `"}`
}

func TestRestartContinuesChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, Options{File: path})
	writeN(t, l, 3)
	// A second writer on the same file is refused while the first holds it.
	if _, err := Open(Options{File: path}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
	l.Close()
	l2 := openT(t, Options{File: path})
	writeN(t, l2, 2)
	l2.Close()
	if res, err := verifyFiles(path); err != nil || res.Lines != 5 {
		t.Fatalf("after restart: %+v %v", res, err)
	}
	// A partial last line (crash mid-write) stops the next start.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"`)
	f.Close()
	if _, err := Open(Options{File: path}); err == nil || !strings.Contains(err.Error(), "incomplete line") {
		t.Fatalf("partial line: %v", err)
	}
}

func TestRotationKeepsChain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openT(t, Options{File: path, MaxBytes: 1500})
	writeN(t, l, 12)
	l.Close()
	// Restart with an empty current file continues from the newest rotated one.
	n := lastRotated(path)
	if n < 2 {
		t.Fatalf("expected at least 2 rotations, got %d", n)
	}
	l2 := openT(t, Options{File: path, MaxBytes: 1500})
	writeN(t, l2, 1)
	l2.Close()
	var files []string
	for i := 1; i <= lastRotated(path); i++ {
		files = append(files, rotatedName(path, i))
	}
	files = append(files, path)
	res, err := verifyFiles(files...)
	if err != nil || res.FirstSeq != 1 {
		t.Fatalf("rotated chain: %+v, %v", res, err)
	}
	if first := lines(t, rotatedName(path, 2))[0]; !strings.Contains(first, `"phase":"rotated"`) {
		t.Errorf("second file does not begin with a rotated line: %s", first)
	}
	// Files out of order, or one left out, break the chain at the first line
	// of the file that does not follow.
	swapped := append([]string{files[1], files[0]}, files[2:]...)
	var be *BrokenError
	if _, err := verifyFiles(swapped...); !errors.As(err, &be) || be.Line != 1 || be.File != filepath.Base(files[0]) {
		t.Errorf("swapped files: %v", err)
	}
	if _, err := verifyFiles(append([]string{files[0]}, files[2:]...)...); !errors.As(err, &be) || be.Line != 1 {
		t.Errorf("missing file: %v", err)
	}
}

// TestFailClosed: a log that cannot be written refuses every event, and
// keeps refusing.
func TestFailClosed(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	l, err := Open(Options{File: "/dev/full"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for range 2 {
		if err := l.Write(Event{Phase: PhaseBegin}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("write to a full disk: %v", err)
		}
	}
	if _, err := Open(Options{File: filepath.Join(t.TempDir(), "no", "such", "dir")}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, Options{File: path, MaxBytes: 20000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				if err := l.Write(Event{Phase: PhaseEnd, Call: fmt.Sprint(g, "-", i), Outcome: OutcomeOK}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	var files []string
	for i := 1; i <= lastRotated(path); i++ {
		files = append(files, rotatedName(path, i))
	}
	res, err := verifyFiles(append(files, path)...)
	if err != nil || res.LastSeq != uint64(320+len(files)) {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestNoFileMirrorsOnly(t *testing.T) {
	l := openT(t, Options{Now: func() time.Time { return time.Unix(0, 0) }})
	if err := l.Write(Event{Phase: PhaseDenied}); err != nil {
		t.Fatal(err)
	}
	if seq, _ := l.Head(); seq != 1 {
		t.Errorf("seq %d", seq)
	}
}

// TestGroupCommit: with concurrent writers sharing fsyncs, no Write returns
// before an fsync that began after its line was in the file, fsyncs are
// shared, and a failed fsync fails every writer waiting on it and every
// later Write (fail closed).
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, Options{File: path})
	var mu sync.Mutex
	durable, syncs, failAt := int64(0), 0, 0
	l.syncFile = func(f *os.File) error {
		st, err := f.Stat() // what this fsync covers: the file as it is now
		if err != nil {
			return err
		}
		time.Sleep(time.Millisecond) // let writers pile up behind it
		mu.Lock()
		defer mu.Unlock()
		syncs++
		if failAt > 0 && syncs >= failAt {
			return errors.New("injected fsync failure")
		}
		durable = max(durable, st.Size())
		return nil
	}
	const writers, each = 8, 30
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				call := fmt.Sprintf(`"call":"%d-%d"`, g, i)
				if err := l.Write(Event{Phase: PhaseEnd, Call: fmt.Sprint(g, "-", i), Outcome: OutcomeOK}); err != nil {
					t.Error(err)
					return
				}
				b, err := os.ReadFile(path)
				if err != nil {
					t.Error(err)
					return
				}
				at := bytes.Index(b, []byte(call))
				end := at + bytes.IndexByte(b[at:], '\n') + 1
				mu.Lock()
				d := durable
				mu.Unlock()
				if at < 0 || int64(end) > d {
					t.Errorf("Write of %s returned before an fsync covered it (line ends at %d, durable %d)", call, end, d)
					return
				}
			}
		}()
	}
	wg.Wait()
	if syncs >= writers*each {
		t.Errorf("%d fsyncs for %d events: none shared", syncs, writers*each)
	}
	t.Logf("%d events, %d fsyncs", writers*each, syncs)

	mu.Lock()
	failAt = syncs + 1
	mu.Unlock()
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- l.Write(Event{Phase: PhaseEnd}) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("Write during a failing fsync: %v", err)
		}
	}
	if err := l.Append(Event{Phase: PhaseBegin}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after a failed fsync: %v", err)
	}
}

// gatedSync is an fsync for tests: it records how much of the file each
// completed fsync covered (the size when it began), can be held (gate) and
// can fail.
type gatedSync struct {
	mu      sync.Mutex
	durable int64
	syncs   int
	gate    chan struct{} // nil: no hold; else each fsync waits for a value
	started chan struct{} // receives when a held fsync begins
	fail    error
}

func (g *gatedSync) sync(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.mu.Unlock()
	if gate != nil {
		g.started <- struct{}{}
		<-gate
	}
	if fail != nil {
		return fail
	}
	if err := dataSync(f); err != nil {
		return err
	}
	g.mu.Lock()
	g.syncs++
	g.durable = max(g.durable, st.Size())
	g.mu.Unlock()
	return nil
}

// release lets the held fsync go on, and later ones run freely.
func (g *gatedSync) release() {
	g.mu.Lock()
	gate := g.gate
	g.gate = nil
	g.mu.Unlock()
	close(gate)
}

func (g *gatedSync) covered() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.durable
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestBeginWaitsForItsFsync: under SyncBegin, End does not return while the
// fsync that covers the begin line is held, and returns once it completed;
// the end line is in the file (write(2)) before that.
func TestBeginWaitsForItsFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	g := &gatedSync{gate: make(chan struct{}), started: make(chan struct{}, 4)}
	l := openT(t, Options{File: path, Sync: SyncBegin, FlushInterval: time.Hour, SyncFile: g.sync})
	released := false
	defer func() {
		if !released { // a failed check must not leave Close waiting on the held fsync
			g.release()
		}
	}()
	b, err := l.Begin(Event{Phase: PhaseBegin, Call: "c1", Caller: "client", RPC: pecetv1.SignService_Sign_FullMethodName})
	if err != nil {
		t.Fatal(err)
	}
	afterBegin := fileSize(t, path)
	<-g.started // the begin line's fsync started without anybody waiting for it
	done := make(chan error, 1)
	go func() { done <- l.End(b, Event{Phase: PhaseEnd, Call: "c1", Outcome: OutcomeOK}) }()
	// End writes its line, then waits: once the line is in the file, End
	// must still be waiting for the held fsync.
	testtool.Eventually(t, 5*time.Second, func() bool { return fileSize(t, path) > afterBegin }, "the end line in the file")
	select {
	case err := <-done:
		t.Fatalf("End returned (%v) while the begin line's fsync was held", err)
	default:
	}
	g.release()
	released = true
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := g.covered(); c < afterBegin {
		t.Fatalf("End returned with %d bytes durable, begin line ends at %d", c, afterBegin)
	}
}

// TestBeginEndLineFlushed: under SyncBegin an end line nobody waits for is
// durable within the flush interval without any further call, and Close
// makes everything durable.
func TestBeginEndLineFlushed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	g := &gatedSync{}
	l := openT(t, Options{File: path, Sync: SyncBegin, FlushInterval: 20 * time.Millisecond, SyncFile: g.sync})
	b, err := l.Begin(Event{Phase: PhaseBegin, Call: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.End(b, Event{Phase: PhaseEnd, Call: "c1", Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, path)
	// 20 ms expected; the bound is for a loaded machine.
	testtool.Eventually(t, 5*time.Second, func() bool { return g.covered() >= size }, "end line durable")
	// Nothing pending: the flush loop does not fsync for nothing, over
	// three of its rounds (counted, not slept).
	g.mu.Lock()
	n := g.syncs
	g.mu.Unlock()
	rounds := l.flushRounds.Load()
	testtool.Eventually(t, 5*time.Second, func() bool { return l.flushRounds.Load() >= rounds+3 }, "three flush rounds")
	g.mu.Lock()
	if g.syncs != n {
		t.Errorf("%d fsyncs with nothing to flush", g.syncs-n)
	}
	g.mu.Unlock()

	// Close flushes what the interval has not reached yet.
	l2path := filepath.Join(t.TempDir(), "audit.log")
	g2 := &gatedSync{}
	l2 := openT(t, Options{File: l2path, Sync: SyncBegin, FlushInterval: time.Hour, SyncFile: g2.sync})
	b, _ = l2.Begin(Event{Phase: PhaseBegin, Call: "c2"})
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := l2.End(b, Event{Phase: PhaseEnd, Call: "c2", Outcome: OutcomeOK}); err != nil {
		t.Fatal(err)
	}
	if g2.covered() >= fileSize(t, l2path) {
		t.Fatal("the end line was waited for (SyncBegin must not wait for it)")
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := verifyFiles(l2path); err != nil || res.Lines != 2 {
		t.Fatalf("after Close: %+v %v", res, err)
	}
}

// TestBeginFsyncFailure: under SyncBegin a failed background fsync fails the
// call waiting for it and every later write (fail closed).
func TestBeginFsyncFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	g := &gatedSync{fail: errors.New("injected fsync failure")}
	l := openT(t, Options{File: path, Sync: SyncBegin, FlushInterval: time.Hour, SyncFile: g.sync})
	b, err := l.Begin(Event{Phase: PhaseBegin, Call: "c1"})
	if err != nil {
		t.Fatal(err) // the write(2) succeeded; the fsync runs in the background
	}
	if err := b.Wait(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Wait after a failed fsync: %v", err)
	}
	if err := l.End(b, Event{Phase: PhaseEnd, Call: "c1"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("End after a failed fsync: %v", err)
	}
	if _, err := l.Begin(Event{Phase: PhaseBegin, Call: "c2"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Begin after a failed fsync: %v", err)
	}
	if err := l.Write(Event{Phase: PhaseDenied}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Write after a failed fsync: %v", err)
	}
}

// TestBeginConcurrentChain: many concurrent begin/end pairs under SyncBegin,
// with rotation, keep one intact chain; every End returned after an fsync
// that covered its begin line; fsyncs are shared.
func TestBeginConcurrentChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	g := &gatedSync{}
	l := openT(t, Options{File: path, Sync: SyncBegin, MaxBytes: 20000, FlushInterval: 10 * time.Millisecond, SyncFile: g.sync})
	const writers, each = 8, 30
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				call := fmt.Sprint(w, "-", i)
				b, err := l.Begin(Event{Phase: PhaseBegin, Call: call})
				if err != nil {
					t.Error(err)
					return
				}
				if err := l.End(b, Event{Phase: PhaseEnd, Call: call, Outcome: OutcomeOK}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	g.mu.Lock()
	syncs := g.syncs
	g.mu.Unlock()
	if syncs >= writers*each {
		t.Errorf("%d fsyncs for %d begin lines: none shared", syncs, writers*each)
	}
	l.Close()
	var files []string
	for i := 1; i <= lastRotated(path); i++ {
		files = append(files, rotatedName(path, i))
	}
	res, err := verifyFiles(append(files, path)...)
	if err != nil || res.LastSeq != uint64(2*writers*each+len(files)) {
		t.Fatalf("%+v %v", res, err)
	}
}
