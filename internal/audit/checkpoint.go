package audit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Signed checkpoints (docs/security.md "Audit log"). The hash chain alone
// proves nothing against whoever can write the file: they recompute it. So
// a key on the token (purpose AUDIT) signs, at an interval, at stop and at
// rotation, a line that names an earlier line by seq and hash; the chain
// then ties every line before it to the signature. The signature is
// asymmetric so that an auditor checks a log offline with the audit key's
// certificate alone (`pecet audit verify --cert`), and a verifier cannot
// forge what it checks, as an HMAC key holder could.
//
// The checkpoint is signed outside the log's lock: it vouches for the line
// that was last when signing began, and lines written meanwhile are vouched
// for by the next checkpoint. No call waits for the token's signature.
//
// The token also keeps, per log, the seq and hash of the last signed line
// written (keystore app state "audit-<log id>"). A restart finds that line
// in the file and checks the chain from it to the end; a file cut before it
// or edited at or before it is refused (ErrResume).

// CheckpointKey signs a checkpoint's SHA-256 digest on the token (ECDSA
// ASN.1 or RSA PKCS#1 v1.5): keystore.KeySigner. ctx bounds the call (one
// pooled session, briefly).
type CheckpointKey interface {
	Public() crypto.PublicKey
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// StateStore keeps small values on the token (keystore.Store's app state).
type StateStore interface {
	GetAppState(ctx context.Context, name string) ([][]byte, error)
	PutAppState(ctx context.Context, name string, value []byte) error
}

// CheckpointOptions turn on signed checkpoints.
type CheckpointOptions struct {
	// Key returns the audit key's current version (asked for at every
	// checkpoint: an officer may rotate it).
	Key   func(ctx context.Context) (CheckpointKey, error)
	State StateStore
	// Interval between checkpoints (default DefaultCheckpointInterval).
	Interval time.Duration
	// Timeout bounds one signature or state update (default 10s).
	Timeout time.Duration
	// StartAfterBreak: when the file does not match the token's last
	// checkpoint, move it aside (FILE.broken-TIME) and start a new log
	// whose first line is a signed break note, instead of refusing.
	StartAfterBreak bool
	// OnError reports a checkpoint that could not be made (the log goes on;
	// the next checkpoint covers the lines).
	OnError func(error)
}

// DefaultCheckpointInterval is audit.checkpoint_interval's default.
const DefaultCheckpointInterval = time.Minute

// ErrResume: the log file does not match the last checkpoint the token
// recorded (cut, edited or replaced); pecetd refuses to continue it.
var ErrResume = errors.New("audit: the log does not match the token's last checkpoint")

// ErrIncomplete: a log does not end in a signed checkpoint (newer than the
// bound asked for): its end may have been cut.
var ErrIncomplete = errors.New("audit: INCOMPLETE")

const signedContext = "pecet audit checkpoint v1\n"

// signedDigest is what a signed line's signature covers: every member that
// gives it meaning, after a context string that no other pecet signature
// starts with (CMS and RFC 3161 sign DER, which starts with 0x30 or 0x31).
func signedDigest(e *Event) []byte {
	h := sha256.New()
	// A hash's Write never returns an error.
	_, _ = io.WriteString(h, signedContext)
	for _, s := range []string{e.Phase, e.Log, e.Time.UTC().Format(time.RFC3339Nano), strconv.FormatUint(e.CPSeq, 10), e.CPHash, e.Note, e.KeyID} {
		_, _ = io.WriteString(h, strconv.Itoa(len(s))+":"+s+"\n")
	}
	return h.Sum(nil)
}

// KeyID is the id signed lines give their key: the first 16 hex digits of
// the SHA-256 of its SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("audit: key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:8]), nil
}

// checkSignature verifies a signed line with the key its key_id names.
func checkSignature(e *Event, keys map[string]crypto.PublicKey) error {
	pub, ok := keys[e.KeyID]
	if !ok {
		return fmt.Errorf("signed by key %s, which is not among the given keys", e.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Sig)
	if err != nil {
		return errors.New("its signature is not base64")
	}
	d := signedDigest(e)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, d, sig) {
			return nil
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, d, sig) == nil {
			return nil
		}
	default:
		return fmt.Errorf("key %s is neither RSA nor ECDSA", e.KeyID)
	}
	return errors.New("its signature does not verify (the line was edited or forged)")
}

// sign fills in a signed line's key id and signature (Time must be set).
func (c *CheckpointOptions) sign(e *Event) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	k, err := c.Key(ctx)
	if err != nil {
		return fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	if e.KeyID, err = KeyID(k.Public()); err != nil {
		return err
	}
	sig, err := k.SignContext(ctx, signedDigest(e), crypto.SHA256)
	if err != nil {
		return fmt.Errorf("audit: sign checkpoint: %w", err)
	}
	e.Sig = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// checkpointState is the token's record of a log's last signed line.
type checkpointState struct {
	Log  string `json:"log"`
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

func stateName(log string) string { return "audit-" + log }

func (c *CheckpointOptions) putState(log string, seq uint64, hash string) error {
	b, _ := json.Marshal(checkpointState{Log: log, Seq: seq, Hash: hash})
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	if err := c.State.PutAppState(ctx, stateName(log), b); err != nil {
		return fmt.Errorf("audit: record checkpoint on the token: %w", err)
	}
	return nil
}

// getState returns the newest record for log (ok false: none).
func (c *CheckpointOptions) getState(log string) (checkpointState, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	vs, err := c.State.GetAppState(ctx, stateName(log))
	if err != nil {
		return checkpointState{}, false, fmt.Errorf("audit: read the last checkpoint from the token: %w", err)
	}
	var best checkpointState
	found := false
	for _, v := range vs {
		var st checkpointState
		if json.Unmarshal(v, &st) != nil || st.Log != log || !isHex64(st.Hash) {
			continue
		}
		if !found || st.Seq > best.Seq {
			best, found = st, true
		}
	}
	return best, found, nil
}

func newLogID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tailLine is what the resume check keeps of a line, read backwards.
type tailLine struct {
	e    Event
	hash string
}

// readBackward calls fn with the lines of f (without '\n') from the last
// to the first, until fn says stop. The file must end in '\n' (lastLine
// checked it).
func readBackward(f *os.File, size int64, fn func(line []byte) (stop bool, err error)) error {
	const chunk = 64 << 10
	var carry []byte // the start of the line that began before the chunk read last
	end := size
	if end > 0 {
		end-- // the final '\n'
	}
	for end > 0 {
		start := max(0, end-chunk)
		buf := make([]byte, end-start, int(end-start)+len(carry))
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("audit: read %s: %w", f.Name(), err)
		}
		buf = append(buf, carry...)
		for {
			i := lastIndexNL(buf)
			if i < 0 {
				break
			}
			if stop, err := fn(buf[i+1:]); stop || err != nil {
				return err
			}
			buf = buf[:i]
		}
		if len(buf) > MaxLine {
			return fmt.Errorf("%w: a line of %s is longer than %d bytes", ErrResume, f.Name(), MaxLine)
		}
		carry = append([]byte(nil), buf...)
		end = start
	}
	if len(carry) > 0 || size > 0 {
		if _, err := fn(carry); err != nil {
			return err
		}
	}
	return nil
}

func lastIndexNL(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i
		}
	}
	return -1
}

// resume checks that path (a non-empty file ending in '\n') continues the
// log the token knows: it reads back from the end, checking the chain,
// until it meets the line the token recorded as the last signed one, and
// returns the last line's seq and hash and the log's id.
func (c *CheckpointOptions) resume(path string) (seq uint64, hash, log string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", "", fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", "", fmt.Errorf("audit: %w", err)
	}
	var (
		last, next *tailLine // the file's last line; the line after the current one
		state      checkpointState
		haveState  bool
		done       bool
	)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrResume, path, fmt.Sprintf(format, a...))
	}
	err = readBackward(f, st.Size(), func(line []byte) (bool, error) {
		e, h, perr := ParseLine(line)
		if perr != nil {
			return true, bad("seq %d: %v", e.Seq, perr)
		}
		cur := &tailLine{e: e, hash: h}
		if next != nil && (next.e.Seq != e.Seq+1 || next.e.Prev != h) {
			return true, bad("seq %d does not follow seq %d (lines were removed or edited)", next.e.Seq, e.Seq)
		}
		if last == nil {
			last = cur
		}
		next = cur
		if !haveState && e.Log != "" {
			if log = e.Log; log != "" {
				s, found, err := c.getState(log)
				if err != nil {
					return true, err
				}
				if !found {
					return true, bad("the token has no checkpoint for log %s (a log from another token, or written without audit.key)", log)
				}
				state, haveState = s, true
				if last.e.Seq < state.Seq {
					return true, bad("the file ends at seq %d, but the token's last checkpoint is seq %d: lines were cut from its end", last.e.Seq, state.Seq)
				}
			}
		}
		if haveState {
			switch {
			case e.Seq == state.Seq && h == state.Hash:
				done = true
				return true, nil
			case e.Seq == state.Seq:
				return true, bad("seq %d is not the line the token's last checkpoint recorded (the file was edited)", e.Seq)
			case e.Seq == state.Seq+1 && e.Sig != "" && e.Phase == PhaseRotated && e.CPSeq == state.Seq && e.CPHash == state.Hash && e.Prev == state.Hash:
				// The file's first line hands over from the rotated file
				// that holds the recorded line.
				done = true
				return true, nil
			case e.Seq < state.Seq:
				return true, bad("seq %d is missing (the token's last checkpoint)", state.Seq)
			}
		}
		return false, nil
	})
	if err != nil {
		return 0, "", "", err
	}
	if !haveState {
		return 0, "", "", bad("no signed line (a log written without audit.key, or its signed lines were removed)")
	}
	if !done {
		return 0, "", "", bad("it starts after seq %d, the token's last checkpoint: lines were removed", state.Seq)
	}
	return last.e.Seq, last.hash, log, nil
}

func (l *Log) report(err error) {
	if f := l.o.Checkpoint.OnError; f != nil {
		f(err)
	}
}

// openSigned finds where a signed log stands (Open, with the file locked):
// a new log starts with a signed genesis line; an existing one must pass
// the resume check.
func (l *Log) openSigned(src string, hasLines bool) error {
	c := *l.o.Checkpoint
	if c.Key == nil || c.State == nil {
		return errors.New("audit: checkpoints need a signer and a state store")
	}
	if c.Interval <= 0 {
		c.Interval = DefaultCheckpointInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	l.o.Checkpoint = &c
	if !hasLines {
		return l.startLog(PhaseGenesis, "")
	}
	seq, hash, log, err := c.resume(src)
	if err != nil {
		if !errors.Is(err, ErrResume) || !c.StartAfterBreak {
			return err
		}
		return l.breakLog(err)
	}
	l.seq, l.prev, l.logID = seq, hash, log
	if l.size == 0 {
		// FILE is empty after a rotation (a crash right after it): it
		// starts with a signed hand-over from the rotated file.
		r := Event{Time: l.o.Now().UTC(), Phase: PhaseRotated, Log: l.logID, CPSeq: l.seq, CPHash: l.prev}
		if err := c.sign(&r); err != nil {
			return err
		}
		return l.appendSigned(r)
	}
	return nil
}

// maxNote bounds a break line's note.
const maxNote = 512

// breakLog moves a file that failed the resume check aside and starts a
// new log whose first line, signed, says why.
func (l *Log) breakLog(cause error) error {
	note := cause.Error()
	if l.size > 0 {
		moved := fmt.Sprintf("%s.broken-%s", l.o.File, l.o.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(l.o.File, moved); err != nil {
			return fmt.Errorf("audit: move the refused log aside: %w", err)
		}
		f, err := openLocked(l.o.File)
		if err != nil {
			return err
		}
		l.f.Close()
		l.f, l.size = f, 0
		note = "the previous file, moved to " + moved + ", was refused: " + note
	}
	if len(note) > maxNote {
		note = note[:maxNote]
	}
	return l.startLog(PhaseBreak, strings.ToValidUTF8(note, ""))
}

// startLog begins a new log (new id, seq 1) with a signed line.
func (l *Log) startLog(phase, note string) error {
	l.logID, l.seq, l.prev = newLogID(), 0, Genesis
	e := Event{Time: l.o.Now().UTC(), Phase: phase, Log: l.logID, CPHash: Genesis, Note: note}
	if err := l.o.Checkpoint.sign(&e); err != nil {
		return err
	}
	return l.appendSigned(e)
}

// appendSigned writes a signed line, waits until it is durable, then
// records it on the token as the log's last checkpoint.
func (l *Log) appendSigned(e Event) error {
	n, seq, hash, err := l.putLine(e)
	if err != nil {
		return err
	}
	if l.hasFile {
		if err := l.syncTo(n); err != nil {
			return err
		}
	}
	return l.o.Checkpoint.putState(l.logID, seq, hash)
}

// checkpointLoop signs a checkpoint every interval and rotates the file
// when put asks, until Close.
func (l *Log) checkpointLoop() {
	defer close(l.cpDone)
	t := time.NewTicker(l.o.Checkpoint.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stopCP:
			return
		case <-t.C:
			l.checkpoint()
			l.rotateSigned() // a rotation postponed earlier
		case <-l.rotateCh:
			l.rotateSigned()
		}
	}
}

// checkpoint signs the line that is last now, without holding the lock,
// and appends the signed line (lines written meanwhile come before it and
// are vouched for by the next checkpoint). A failure is reported and the
// log goes on.
func (l *Log) checkpoint() {
	l.mu.Lock()
	seq, prev, broken := l.seq, l.prev, l.err != nil
	l.mu.Unlock()
	if broken {
		return
	}
	e := Event{Time: l.o.Now().UTC(), Phase: PhaseCheckpoint, Log: l.logID, CPSeq: seq, CPHash: prev}
	if err := l.o.Checkpoint.sign(&e); err != nil {
		l.report(err)
		return
	}
	if err := l.appendSigned(e); err != nil {
		l.report(err)
	}
}

// rotateSigned renames a full file to FILE.n after a checkpoint that
// vouches for its last line, and starts FILE with a signed hand-over. Both
// lines are signed before the lock is taken; if lines were written
// meanwhile it signs again, and after three tries it signs holding the lock
// (writers wait for two signatures, once per file).
func (l *Log) rotateSigned() {
	c := l.o.Checkpoint
	for try := 0; ; try++ {
		l.mu.Lock()
		need := l.err == nil && l.f != nil && l.o.MaxBytes > 0 && l.size >= l.o.MaxBytes
		seq, prev := l.seq, l.prev
		l.mu.Unlock()
		if !need {
			return
		}
		locked := try >= 3
		unlock := func() {
			l.mu.Unlock()
			l.scond.Broadcast()
			l.smu.Unlock()
		}
		if locked {
			l.waitIdle()
			l.mu.Lock()
			seq, prev = l.seq, l.prev
		}
		cp := Event{Time: l.o.Now().UTC(), Seq: seq + 1, Phase: PhaseCheckpoint, Log: l.logID, CPSeq: seq, CPHash: prev, Prev: prev}
		var (
			cpLine, rLine []byte
			cpHash, rHash string
			r             Event
		)
		err := c.sign(&cp)
		if err == nil {
			cpLine, cpHash, err = encode(cp)
		}
		if err == nil {
			r = Event{Time: cp.Time, Seq: seq + 2, Phase: PhaseRotated, Log: l.logID, CPSeq: seq + 1, CPHash: cpHash, Prev: cpHash}
			err = c.sign(&r)
		}
		if err == nil {
			rLine, rHash, err = encode(r)
		}
		if err != nil {
			if locked {
				unlock()
			}
			l.report(fmt.Errorf("audit: rotation postponed: %w", err))
			return
		}
		if !locked {
			l.waitIdle()
			l.mu.Lock()
			if l.seq != seq || l.prev != prev {
				unlock()
				continue
			}
		}
		err = l.swapFiles(cpLine, rLine)
		if err == nil {
			l.seq, l.prev = seq+2, rHash
			l.written += 2
			l.synced = l.written
		}
		unlock()
		if err != nil {
			l.report(err)
			return
		}
		l.mirror(cp, cpHash)
		l.mirror(r, rHash)
		if err := c.putState(l.logID, seq+2, rHash); err != nil {
			l.report(err)
		}
		return
	}
}

// swapFiles ends the full file with cpLine, renames it to FILE.n and
// starts FILE with rLine (mu and smu held). A failure fails the log.
func (l *Log) swapFiles(cpLine, rLine []byte) error {
	fail := func(err error) error {
		l.err = fmt.Errorf("%w: rotate: %w", ErrUnavailable, err)
		return l.err
	}
	if _, err := l.f.Write(cpLine); err != nil {
		return fail(err)
	}
	if err := l.f.Sync(); err != nil {
		return fail(err)
	}
	next := rotatedName(l.o.File, lastRotated(l.o.File)+1)
	if err := os.Rename(l.o.File, next); err != nil {
		return fail(err)
	}
	f, err := openLocked(l.o.File)
	if err != nil {
		return fail(err)
	}
	l.f.Close()
	l.f, l.size = f, 0
	if _, err := f.Write(rLine); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	l.size = int64(len(rLine))
	return nil
}
