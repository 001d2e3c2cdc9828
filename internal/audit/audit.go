package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Phases of an event.
const (
	PhaseBegin   = "begin"   // before a key operation: who asks for what
	PhaseEnd     = "end"     // its outcome
	PhaseDenied  = "denied"  // refused by authorisation before any handler ran
	PhaseRotated = "rotated" // first line of a file after rotation
	PhaseStart   = "start"   // the process opened the log
	PhaseStop    = "stop"    // the process closes the log (graceful shutdown)
	// Signed lines (checkpoint.go).
	PhaseGenesis    = "genesis"    // first line of a new log
	PhaseCheckpoint = "checkpoint" // vouches for the chain up to a line
	PhaseBreak      = "break"      // first line of a log started after a refused resume
)

// Outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeError   = "error"
	OutcomeDenied  = "denied"
	OutcomePending = "pending" // dual control: waiting for a second officer
)

// Event is one audit line's content. Time, Seq and Prev are set by Write.
type Event struct {
	Time  time.Time `json:"time"`
	Seq   uint64    `json:"seq"`
	Phase string    `json:"phase"`
	// Call ties a begin line to its end line.
	Call   string `json:"call,omitempty"`
	Caller string `json:"caller,omitempty"`
	Role   string `json:"role,omitempty"`
	RPC    string `json:"rpc,omitempty"`
	Key    string `json:"key,omitempty"`
	// Version is the key version; 0 when none or not yet known (primary).
	Version int `json:"version,omitempty"`
	// InputSHA256 is the hex SHA-256 of the operation's input (data,
	// digest, certificate chain, …), never the input.
	InputSHA256 string `json:"input_sha256,omitempty"`
	// Request is a dual-control request id.
	Request string `json:"request,omitempty"`
	// Archive is the archive batch an end line vouches for: "root=<hex>
	// count=<n>" (docs/archive.md), one line per batch, not per document.
	Archive string `json:"archive,omitempty"`
	Outcome string `json:"outcome,omitempty"`
	// Code is the gRPC status code name of a failed call.
	Code string `json:"code,omitempty"`
	// Batch and Item: an item line's batch call id and its position in
	// the batch, from 1 (batch.go).
	Batch string `json:"batch,omitempty"`
	Item  int    `json:"item,omitempty"`
	// The members of a signed line (genesis, checkpoint, rotated, break;
	// checkpoint.go): the log's id, the line the signature vouches for
	// (its seq and hash), a note (break), the signing key's id and the
	// signature.
	Log    string `json:"log,omitempty"`
	CPSeq  uint64 `json:"cp_seq,omitempty"`
	CPHash string `json:"cp_hash,omitempty"`
	Note   string `json:"note,omitempty"`
	KeyID  string `json:"key_id,omitempty"`
	Sig    string `json:"sig,omitempty"`
	Prev   string `json:"prev"`
	// Lifecycle marks the lines of a key lifecycle change (the KeyService
	// calls): not part of the line, it only makes MirrorErrors ship it.
	Lifecycle bool `json:"-"`
}

// Genesis is prev of the first line of a log.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxLine bounds one line; longer lines are refused by Write and by Verify.
// Events hold short strings only (identities, aliases, hex digests).
const MaxLine = 16 << 10

// Sync policies.
type SyncPolicy string

const (
	// SyncEvent fsyncs before Write returns (shared between concurrent
	// writers). The default.
	SyncEvent SyncPolicy = "event"
	// SyncBegin (write-ahead) starts an fsync of a key operation's begin
	// line in the background as Begin writes it, so that it runs while the
	// token works; End waits for it and appends the end line without
	// waiting: that line is made durable by the next fsync, at the latest
	// FlushInterval later. Write (denied, lifecycle, start and stop lines)
	// still waits for its fsync, as with SyncEvent.
	SyncBegin SyncPolicy = "begin"
	// SyncNone leaves flushing to the kernel.
	SyncNone SyncPolicy = "none"
)

// MirrorLevel says which lines Options.Mirror receives. The file gets
// every line whatever the level; the mirror is a copy for shipping off the
// host and for alerting (docs/operations.md "Logs and the audit log").
type MirrorLevel string

const (
	// MirrorNone mirrors nothing.
	MirrorNone MirrorLevel = "none"
	// MirrorDenied mirrors denied lines (authorisation refused a call, or
	// a handler refused a key), and the log's own lines: start, stop,
	// configuration reloads and the signed lines (genesis, checkpoint,
	// rotated, break), a handful a minute, which let the shipped copy show
	// a cut or replaced file. Every line that is not a key operation's
	// begin or end line is mirrored at this level and above.
	MirrorDenied MirrorLevel = "denied"
	// MirrorErrors adds the end lines of failed calls and both lines of
	// every key lifecycle change (Event.Lifecycle). The default: what an
	// operator alerts on, without a copy of every successful signature.
	MirrorErrors MirrorLevel = "errors"
	// MirrorAll mirrors every line (the shipped copy is then a complete
	// second copy of the log).
	MirrorAll MirrorLevel = "all"
)

// DefaultMirror is the mirror level when Options.MirrorLevel is empty.
const DefaultMirror = MirrorErrors

// mirrors says whether level ships e. It reads the event's fields only:
// a line not mirrored costs no encoding and no I/O.
func (m MirrorLevel) mirrors(e *Event) bool {
	switch m {
	case MirrorAll:
		return true
	case MirrorNone:
		return false
	}
	if e.Phase != PhaseBegin && e.Phase != PhaseEnd && e.Phase != PhaseItem {
		// Denied lines and the log's own (start, stop, signed lines, a
		// configuration reload): rare, and any new phase is shipped.
		return true
	}
	if e.Outcome == OutcomeDenied {
		return true
	}
	return m == MirrorErrors && (e.Outcome == OutcomeError || e.Lifecycle)
}

// DefaultFlushInterval bounds how long an end line written under SyncBegin
// waits for an fsync when no later begin line brings one.
const DefaultFlushInterval = 100 * time.Millisecond

// ErrUnavailable wraps every failure to write an event: the caller must
// refuse the operation it was about to audit.
var ErrUnavailable = errors.New("audit: log cannot be written")

// Options configure a Log.
type Options struct {
	// File is the log file; empty means no file (events go to Mirror only:
	// library tests and servers built without a log).
	File string
	// Sync is the fsync policy (default SyncEvent).
	Sync SyncPolicy
	// MaxBytes rotates the file when it grows past this size (0: never).
	MaxBytes int64
	// Mirror receives events as slog records (stderr JSON in pecetd):
	// those MirrorLevel selects.
	Mirror *slog.Logger
	// MirrorLevel selects the lines Mirror gets (default DefaultMirror).
	MirrorLevel MirrorLevel
	// Now is the clock (default time.Now).
	Now func() time.Time
	// FlushInterval: with SyncBegin, lines not yet durable are fsynced at
	// most this long after they were written (default
	// DefaultFlushInterval). Unused by the other policies.
	FlushInterval time.Duration
	// SyncFile replaces fdatasync(2) (nil: fdatasync): a seam for tests
	// that watch, delay or fail fsyncs. It must make every line written to
	// the file before it was called durable, or fail.
	SyncFile func(*os.File) error
	// Checkpoint turns on signed checkpoints and the resume check
	// (checkpoint.go); nil: the unkeyed chain alone (library tests).
	Checkpoint *CheckpointOptions
}

// Log appends events to one file.
type Log struct {
	o       Options
	hasFile bool

	mu      sync.Mutex // guards the fields below and the file's tail
	f       *os.File
	size    int64
	seq     uint64
	prev    string
	written uint64 // lines written by this process
	err     error  // sticky: once a write failed, every later one fails

	// Group commit: at most one fsync runs at a time (syncing); when it
	// ends, every writer it covered is woken at once (scond) and one
	// writer not covered starts the next fsync for all lines written so
	// far. A mutex handed from waiter to waiter instead kept writers that
	// the last fsync had covered queued behind the next one (5 events per
	// fsync with 16 writers, where a broadcast gives most of 16).
	smu     sync.Mutex // guards syncing, synced and serr
	scond   *sync.Cond // on smu: an fsync or a rotation ended
	syncing bool       // an fsync or a rotation is under way
	synced  uint64     // lines known durable
	serr    error
	// syncFile makes a file's written lines durable (tests replace it to
	// watch or fail fsyncs).
	syncFile func(*os.File) error

	// SyncBegin's background flush of end lines (stopped by Close).
	stopFlush chan struct{}
	flushDone chan struct{}
	// flushRounds counts the flush loop's rounds, so that a test waits for
	// rounds to pass rather than sleeping.
	flushRounds atomic.Int64
	closeOnce   sync.Once

	// Signed checkpoints (Options.Checkpoint): the log's id, and the
	// goroutine that signs checkpoints and rotates.
	logID    string
	rotateCh chan struct{} // put asks for a rotation (capacity 1)
	stopCP   chan struct{}
	cpDone   chan struct{}
}

// Open opens (or creates) the log file, takes its lock and finds where the
// chain stands. A file that ends in a partial line is refused.
func Open(o Options) (*Log, error) {
	if o.Sync == "" {
		o.Sync = SyncEvent
	}
	if o.Sync != SyncEvent && o.Sync != SyncBegin && o.Sync != SyncNone {
		return nil, fmt.Errorf("audit: unknown sync policy %q (event, begin, none)", o.Sync)
	}
	if o.MirrorLevel == "" {
		o.MirrorLevel = DefaultMirror
	}
	switch o.MirrorLevel {
	case MirrorNone, MirrorDenied, MirrorErrors, MirrorAll:
	default:
		return nil, fmt.Errorf("audit: unknown mirror level %q (none, denied, errors, all)", o.MirrorLevel)
	}
	if o.FlushInterval < 0 {
		return nil, fmt.Errorf("audit: negative flush interval %v", o.FlushInterval)
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Log{o: o, prev: Genesis}
	l.scond = sync.NewCond(&l.smu)
	l.syncFile = dataSync
	if o.SyncFile != nil {
		l.syncFile = o.SyncFile
	}
	if o.File == "" {
		return l, nil
	}
	f, err := openLocked(o.File)
	if err != nil {
		return nil, err
	}
	l.f, l.hasFile = f, true
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	l.size = st.Size()
	src := o.File
	if l.size == 0 {
		// A fresh file after a rotation (or a crash right after one): the
		// chain goes on from the newest rotated file.
		if n := lastRotated(o.File); n > 0 {
			src = rotatedName(o.File, n)
		}
	}
	last, err := lastLine(src)
	if err != nil {
		f.Close()
		return nil, err
	}
	if c := o.Checkpoint; c != nil {
		if err := l.openSigned(src, last != nil); err != nil {
			l.f.Close()
			return nil, err
		}
		last = nil
	}
	if last != nil {
		ev, hash, err := ParseLine(last)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("audit: last line of %s: %w: check it with `pecet audit verify`", src, err)
		}
		l.seq, l.prev = ev.Seq, hash
	}
	if o.Sync == SyncBegin {
		l.stopFlush, l.flushDone = make(chan struct{}), make(chan struct{})
		go l.flushLoop()
	}
	if o.Checkpoint != nil {
		l.rotateCh, l.stopCP, l.cpDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go l.checkpointLoop()
	}
	return l, nil
}

// flushLoop makes lines that nobody waits for (SyncBegin's end lines)
// durable every FlushInterval, if any are pending. A failed fsync fails
// the Log (syncTo), and the next call is refused.
func (l *Log) flushLoop() {
	defer close(l.flushDone)
	t := time.NewTicker(l.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopFlush:
			return
		case <-t.C:
		}
		l.mu.Lock()
		n, broken := l.written, l.err != nil
		l.mu.Unlock()
		if broken {
			return
		}
		_ = l.syncTo(n) // returns at once when line n is durable already
		l.flushRounds.Add(1)
	}
}

func openLocked(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	// One writer per file: a second process would fork the chain.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s is in use by another process (each pecetd needs its own audit file): %w", path, err)
	}
	return f, nil
}

// lastLine returns the last line of a file without its newline, nil for an
// empty or absent file, and an error when the file does not end in '\n'.
func lastLine(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if st.Size() == 0 {
		return nil, nil
	}
	n := min(st.Size(), int64(MaxLine)+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, st.Size()-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("audit: read %s: %w", path, err)
	}
	if buf[len(buf)-1] != '\n' {
		return nil, fmt.Errorf("audit: %s ends with an incomplete line (a crash while writing?): check it with `pecet audit verify` and move it aside", path)
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && n == st.Size() {
		return buf, nil
	}
	if i < 0 {
		return nil, fmt.Errorf("audit: %s: last line longer than %d bytes", path, MaxLine)
	}
	return buf[i+1:], nil
}

func rotatedName(file string, n int) string { return file + "." + strconv.Itoa(n) }

// lastRotated returns the highest n for which FILE.n exists (0 if none).
func lastRotated(file string) int {
	matches, _ := filepath.Glob(file + ".*")
	best := 0
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, file+"."))
		if err == nil && n > best {
			best = n
		}
	}
	return best
}

// The entry points, by how durable their line is when they return, under
// each Options.Sync (the costs: docs/performance.md "audit.sync: begin").
// "In the file" is one write(2): the line survives a crash of the process,
// not of the machine; "on disk" is after fsync. The names say the phase,
// not the durability (they are kept: the server and the tests call them),
// so this table, and the first sentence of each doc comment, say it:
//
//	            event (default)        begin                     none
//	Write       on disk                on disk                   in the file
//	Append      in the file            in the file               in the file
//	Begin       in the file            in the file; fsync runs,  in the file
//	                                   on disk when Wait/End
//	                                   returns nil
//	BeginAhead  in the file; fsync     as Begin                  in the file
//	            runs, as Begin under
//	            begin
//	End         end and begin line     end line in the file;     in the file
//	            on disk                begin line on disk
//
// Without a file (stderr only) every line is written when they return.

// Write appends one event and returns once it is on disk (SyncEvent,
// SyncBegin) or in the file (SyncNone). Time, Seq and Prev are filled in
// here. An error (always wrapping ErrUnavailable) means the event is not in
// the log and the operation it describes must not run or must not be
// reported as done.
func (l *Log) Write(e Event) error { return l.write(e, l.o.Sync != SyncNone) }

// Append returns once the line is in the file, never waiting for fsync (one
// write(2), so it survives a crash of the process) but not necessarily on
// disk. The server uses it for the begin lines of key lifecycle calls,
// whose end line is written with Write: its fsync makes both durable
// before the result leaves the service. Key operations use Begin and End.
func (l *Log) Append(e Event) error { return l.write(e, false) }

// Begun is a begin line written by Begin: Wait says when it is durable.
type Begun struct {
	done chan struct{} // closed when the background fsync ended (SyncBegin); nil: no wait
	err  error         // its result, set before done is closed
}

// Begin returns once the begin line of a key operation is in the file; it
// is written before the operation runs. With SyncBegin it also starts, in the background, an fsync covering
// the line (shared with other writers), so that the fsync runs while the
// token works; the result must not leave the service before Wait (or End)
// returned nil. With SyncEvent and SyncNone it is Append: the end line's
// Write makes both lines durable (SyncEvent).
func (l *Log) Begin(e Event) (*Begun, error) { return l.begin(e, l.o.Sync == SyncBegin) }

// BeginAhead returns once the begin line is in the file, as Begin, and
// starts the line's fsync at once under SyncEvent too. It is for operations whose result leaves in parts before
// the end line is written (a stream's output, an HTTP body larger than the
// server's buffer): holding the first part until Wait returns keeps
// SyncEvent's promise that no result leaves unaudited on disk.
func (l *Log) BeginAhead(e Event) (*Begun, error) { return l.begin(e, l.o.Sync != SyncNone) }

func (l *Log) begin(e Event, ahead bool) (*Begun, error) {
	n, err := l.put(e)
	if err != nil {
		return nil, err
	}
	b := &Begun{}
	if ahead && l.hasFile {
		b.done = make(chan struct{})
		go func() {
			b.err = l.syncTo(n)
			close(b.done)
		}()
	}
	return b, nil
}

// Wait returns once the begin line is durable (SyncBegin; at once with the
// other policies), or the error that stops it from being (always wrapping
// ErrUnavailable: the operation's result must not leave the service).
func (b *Begun) Wait() error {
	if b == nil || b.done == nil {
		return nil
	}
	<-b.done
	return b.err
}

// End writes the end line of the operation begun by b and returns once the
// begin line is on disk (SyncEvent, SyncBegin). With SyncEvent it is Write
// (both lines on disk when it returns); with SyncBegin it appends the
// line without waiting for it (a later fsync covers it, at the latest
// FlushInterval later) and returns once b's begin line is durable; with
// SyncNone it appends. An error (wrapping ErrUnavailable) means the result
// must not leave the service.
func (l *Log) End(b *Begun, e Event) error {
	err := l.write(e, l.o.Sync == SyncEvent)
	if werr := b.Wait(); werr != nil {
		return werr
	}
	return err
}

func (l *Log) write(e Event, sync bool) error {
	mine, err := l.put(e)
	if err != nil || !l.hasFile || !sync {
		return err
	}
	return l.syncTo(mine)
}

// put appends one line (one write(2)), rotates the file if it is full, and
// returns the line's number (counted by written).
func (l *Log) put(e Event) (uint64, error) {
	n, _, _, err := l.putLine(e)
	return n, err
}

// putLine is put that also returns the line's seq and hash.
func (l *Log) putLine(e Event) (n, seq uint64, hash string, err error) {
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return 0, 0, "", err
	}
	if e.Sig == "" {
		e.Time = l.o.Now().UTC() // a signed line keeps the time it signed
	}
	e.Seq = l.seq + 1
	e.Prev = l.prev
	line, hash, err := encode(e)
	if err != nil {
		l.mu.Unlock()
		return 0, 0, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if l.f != nil {
		if _, err := l.f.Write(line); err != nil {
			l.err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			err := l.err
			l.mu.Unlock()
			return 0, 0, "", err
		}
	}
	l.seq, l.prev = e.Seq, hash
	l.size += int64(len(line))
	l.written++
	mine := l.written
	rotate := l.f != nil && l.o.MaxBytes > 0 && l.size >= l.o.MaxBytes
	l.mu.Unlock()

	l.mirror(e, hash)
	if rotate && l.rotateCh != nil {
		// Signed rotation needs the token: the checkpoint goroutine does
		// it, off the call path (the file grows a little past MaxBytes
		// meanwhile).
		select {
		case l.rotateCh <- struct{}{}:
		default:
		}
		rotate = false
	}
	if rotate {
		// The rotation fsyncs the full file, which makes this line and
		// every earlier one durable.
		if err := l.rotate(); err != nil {
			return 0, 0, "", err
		}
	}
	return mine, e.Seq, hash, nil
}

// syncTo returns once line n (counted by written) is durable. An fsync
// that began after line n was written covers it; a writer that finds none
// under way starts one for everybody written so far, and the others wait
// for it (group commit).
func (l *Log) syncTo(n uint64) error {
	l.smu.Lock()
	defer l.smu.Unlock()
	for {
		if l.serr != nil {
			return l.serr
		}
		if l.synced >= n {
			return nil
		}
		if l.syncing {
			l.scond.Wait()
			continue
		}
		l.syncing = true
		l.mu.Lock()
		target, f := l.written, l.f
		l.mu.Unlock()
		l.smu.Unlock()
		err := l.syncFile(f)
		l.smu.Lock()
		l.syncing = false
		if err != nil {
			l.mu.Lock()
			l.err = fmt.Errorf("%w: fsync: %w", ErrUnavailable, err)
			l.serr = l.err
			l.mu.Unlock()
		} else if target > l.synced {
			l.synced = target
		}
		l.scond.Broadcast()
	}
}

// waitIdle takes smu once no fsync is under way (rotate and Close run
// with smu held, so no fsync starts meanwhile).
func (l *Log) waitIdle() {
	l.smu.Lock()
	for l.syncing {
		l.scond.Wait()
	}
}

// rotate renames the full file to FILE.n and starts a new one whose first
// line carries the chain on.
func (l *Log) rotate() error {
	l.waitIdle()
	defer l.smu.Unlock()
	defer l.scond.Broadcast()
	l.mu.Lock()
	if l.err != nil || l.o.MaxBytes == 0 || l.size < l.o.MaxBytes {
		err := l.err
		l.mu.Unlock()
		return err // another writer rotated already, or the log is broken
	}
	fail := func(err error) error {
		l.err = fmt.Errorf("%w: rotate: %w", ErrUnavailable, err)
		l.mu.Unlock()
		return l.err
	}
	if err := l.f.Sync(); err != nil {
		return fail(err)
	}
	next := rotatedName(l.o.File, lastRotated(l.o.File)+1)
	if err := os.Rename(l.o.File, next); err != nil {
		return fail(err)
	}
	old := l.f
	f, err := openLocked(l.o.File)
	if err != nil {
		return fail(err)
	}
	old.Close()
	l.f, l.size = f, 0
	l.synced = l.written
	e := Event{Time: l.o.Now().UTC(), Seq: l.seq + 1, Phase: PhaseRotated, Prev: l.prev}
	line, hash, err := encode(e)
	if err != nil {
		return fail(err)
	}
	if _, err := f.Write(line); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	l.seq, l.prev, l.size = e.Seq, hash, int64(len(line))
	l.written++
	l.synced = l.written
	l.mu.Unlock()
	l.mirror(e, hash)
	return nil
}

// mirror sends a line to Options.Mirror if its level selects it; called
// outside the log's lock. Lines not selected return before any encoding.
func (l *Log) mirror(e Event, hash string) {
	if l.o.Mirror == nil || !l.o.MirrorLevel.mirrors(&e) {
		return
	}
	attrs := []slog.Attr{slog.Uint64("seq", e.Seq), slog.String("phase", e.Phase)}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("call", e.Call)
	add("caller", e.Caller)
	add("role", e.Role)
	add("rpc", e.RPC)
	add("key", e.Key)
	if e.Version != 0 {
		attrs = append(attrs, slog.Int("version", e.Version))
	}
	add("input_sha256", e.InputSHA256)
	add("request", e.Request)
	add("archive", e.Archive)
	add("outcome", e.Outcome)
	add("code", e.Code)
	add("batch", e.Batch)
	if e.Item != 0 {
		attrs = append(attrs, slog.Int("item", e.Item))
	}
	add("prev", e.Prev)
	add("hash", hash)
	l.o.Mirror.LogAttrs(context.Background(), slog.LevelInfo, "audit", attrs...)
}

// Close syncs and closes the file (graceful shutdown).
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		if l.stopFlush != nil {
			close(l.stopFlush)
			<-l.flushDone
		}
		if l.stopCP != nil {
			close(l.stopCP)
			<-l.cpDone
			// The last line of a log closed cleanly is a checkpoint that
			// vouches for the line before it (the stop line).
			l.checkpoint()
		}
	})
	l.waitIdle()
	defer l.smu.Unlock()
	defer l.scond.Broadcast()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	serr := l.f.Sync()
	if serr == nil {
		l.synced = l.written
	}
	err := errors.Join(serr, l.f.Close())
	l.f = nil
	if l.err == nil {
		l.err = fmt.Errorf("%w: closed", ErrUnavailable)
	}
	return err
}

// Head returns the sequence number and hash of the last line written.
func (l *Log) Head() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.prev
}

const hashKey = `,"hash":"`

// encode makes the line (with '\n') and its hash.
func encode(e Event) ([]byte, string, error) {
	body, ok := appendEvent(make([]byte, 0, 512), &e)
	if !ok {
		var err error
		if body, err = json.Marshal(e); err != nil {
			return nil, "", err
		}
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(body)+len(hashKey)+len(hash)+3)
	line = append(line, body[:len(body)-1]...)
	line = append(line, hashKey...)
	line = append(line, hash...)
	line = append(line, '"', '}', '\n')
	if len(line) > MaxLine {
		return nil, "", fmt.Errorf("audit: event of %d bytes exceeds %d", len(line), MaxLine)
	}
	return line, hash, nil
}

// InputHash is the hex SHA-256 of an operation's input, as events carry it.
func InputHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendEvent appends the JSON of e exactly as json.Marshal writes it, for
// the events every key operation writes twice: reflection-based encoding
// was a third of the audit log's CPU per event. It handles the strings
// that need no escaping (identities, aliases, RPC names, hex) and says
// false for anything else, which encode then gives to json.Marshal.
// TestAppendEventMatchesJSON and FuzzAppendEvent hold it to json.Marshal.
func appendEvent(b []byte, e *Event) ([]byte, bool) {
	// json.Marshal refuses these times (RFC 3339 has no room for them).
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return nil, false
	}
	if _, off := e.Time.Zone(); off%60 != 0 {
		return nil, false
	}
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	ok := true
	str := func(key, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				ok = false
				return
			}
		}
		b = append(b, `,"`...)
		b = append(b, key...)
		b = append(b, `":"`...)
		b = append(b, v...)
		b = append(b, '"')
	}
	str("phase", e.Phase, false)
	str("call", e.Call, true)
	str("caller", e.Caller, true)
	str("role", e.Role, true)
	str("rpc", e.RPC, true)
	str("key", e.Key, true)
	if e.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(e.Version), 10)
	}
	str("input_sha256", e.InputSHA256, true)
	str("request", e.Request, true)
	str("archive", e.Archive, true)
	str("outcome", e.Outcome, true)
	str("code", e.Code, true)
	str("batch", e.Batch, true)
	if e.Item != 0 {
		b = append(b, `,"item":`...)
		b = strconv.AppendInt(b, int64(e.Item), 10)
	}
	str("log", e.Log, true)
	if e.CPSeq != 0 {
		b = append(b, `,"cp_seq":`...)
		b = strconv.AppendUint(b, e.CPSeq, 10)
	}
	str("cp_hash", e.CPHash, true)
	str("note", e.Note, true)
	str("key_id", e.KeyID, true)
	str("sig", e.Sig, true)
	str("prev", e.Prev, false)
	if !ok {
		return nil, false
	}
	return append(b, '}'), true
}
