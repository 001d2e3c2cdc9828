package audit

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrMalformed: a line is not an audit line (bad JSON, unknown member,
// missing or misplaced hash).
var ErrMalformed = errors.New("audit: malformed line")

// ParseLine checks one line (without its newline) on its own: the shape, the
// members, and that its hash is the SHA-256 of the rest. It returns the
// event and the line's hash. It does not know the line's neighbours.
func ParseLine(line []byte) (Event, string, error) {
	if len(line) > MaxLine {
		return Event{}, "", fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxLine)
	}
	// The hash member is last, fixed-length: ,"hash":"<64 hex>"}
	const tail = len(hashKey) + 64 + 2
	if len(line) < tail+2 || line[0] != '{' || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[len(line)-tail:len(line)-tail+len(hashKey)], []byte(hashKey)) {
		return Event{}, "", fmt.Errorf("%w: no final hash member", ErrMalformed)
	}
	hash := string(line[len(line)-66 : len(line)-2])
	if !isHex64(hash) {
		return Event{}, "", fmt.Errorf("%w: hash is not 64 lowercase hex digits", ErrMalformed)
	}
	body := append(append(make([]byte, 0, len(line)-tail+1), line[:len(line)-tail]...), '}')
	var e Event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Event{}, "", fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return Event{}, "", fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	if e.Seq == 0 || !isHex64(e.Prev) || e.Phase == "" {
		return Event{}, "", fmt.Errorf("%w: seq, phase and prev are required", ErrMalformed)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != hash {
		return e, hash, errEdited
	}
	return e, hash, nil
}

var errEdited = errors.New("its hash does not match its content (the line was edited)")

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// File is one log file to verify, in chain order.
type File struct {
	Name string
	R    io.Reader
}

// Result sums up a verified chain.
type Result struct {
	Lines    int
	FirstSeq uint64 // 1 when the chain starts at the beginning of the log
	LastSeq  uint64
	LastHash string
	// Signed verification (VerifySigned) only:
	Log         string // the log's id
	Checkpoints int    // signed lines
	// LastSigned is the time and seq of the last signed line.
	LastSigned    time.Time
	LastSignedSeq uint64
	// Tail counts the lines after the line the last signature vouches for.
	Tail int
	// Break is the note of a log that starts after a refused resume.
	Break string
}

// BrokenError names the first line that does not fit the chain.
type BrokenError struct {
	File   string
	Line   int // 1-based line number in File
	Seq    uint64
	Reason string
}

func (e *BrokenError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// IncompleteError: the chain holds, but its end is not vouched for by a
// signature (newer than VerifyOptions.MaxAge): lines may have been cut.
type IncompleteError struct{ Reason string }

func (e *IncompleteError) Error() string { return "INCOMPLETE: " + e.Reason }

// Is makes errors.Is(err, ErrIncomplete) true.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

// VerifyOptions are what a signed log is checked against.
type VerifyOptions struct {
	// Keys are the audit keys' public keys (from their certificates).
	Keys []crypto.PublicKey
	// MaxAge: the last signed line must be at most this old (0: any age).
	MaxAge time.Duration
	// Now is the time MaxAge counts back from (default time.Now()).
	Now time.Time
}

// MaxUnsigned bounds the lines between two signed lines that VerifySigned
// keeps in memory (a checkpoint may vouch for any of them).
const MaxUnsigned = 1 << 20

// Verify reads the files in order and checks every line and the links
// between them, including across files (rotation). When the first file
// does not begin at seq 1, the chain is checked from its first line on
// (Result.FirstSeq says where). A *BrokenError names the first bad line;
// other errors are read failures. It does not check signatures: a log
// rewritten with recomputed hashes passes; use VerifySigned.
func Verify(files ...File) (Result, error) { return verify(nil, files) }

// VerifySigned is Verify for logs with signed checkpoints: besides the
// chain, every signed line's signature (by one of o.Keys) and the line it
// vouches for; the log must start at seq 1 or at a signed hand-over from
// a previous file (else *BrokenError), and its last line must be a signed
// line that vouches for the line before it, at most o.MaxAge old (else
// *IncompleteError).
func VerifySigned(o VerifyOptions, files ...File) (Result, error) {
	if len(o.Keys) == 0 {
		return Result{}, errors.New("audit: no audit key to verify signatures with")
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return verify(&o, files)
}

func verify(o *VerifyOptions, files []File) (Result, error) {
	var res Result
	keys := map[string]crypto.PublicKey{}
	if o != nil {
		for _, k := range o.Keys {
			id, err := KeyID(k)
			if err != nil {
				return res, err
			}
			keys[id] = k
		}
	}
	// recent maps the seq of every line since the last signed line to its
	// hash: the next signed line vouches for one of them.
	recent := map[uint64]string{}
	prevHash, prevSeq, started := "", uint64(0), false
	lastExact := false // the last line read is a signed line vouching for the one before it
	for _, f := range files {
		sc := bufio.NewScanner(f.R)
		sc.Buffer(make([]byte, 0, 4096), MaxLine+1)
		n := 0
		for sc.Scan() {
			n++
			bad := func(seq uint64, format string, a ...any) error {
				return &BrokenError{File: f.Name, Line: n, Seq: seq, Reason: fmt.Sprintf(format, a...)}
			}
			e, hash, err := ParseLine(sc.Bytes())
			switch {
			case errors.Is(err, errEdited):
				return res, bad(e.Seq, "seq %d: %v", e.Seq, err)
			case err != nil:
				return res, bad(0, "%v", err)
			}
			signed := o != nil && e.Sig != ""
			if !started {
				started = true
				res.FirstSeq = e.Seq
				if e.Seq == 1 && e.Prev != Genesis {
					return res, bad(e.Seq, "seq 1 does not start a log (prev is not the genesis hash)")
				}
				handOver := signed && e.Phase == PhaseRotated && e.CPSeq == e.Seq-1 && e.CPHash == e.Prev
				if o != nil && e.Seq != 1 && !handOver {
					return res, bad(e.Seq, "the log starts at seq %d, neither at seq 1 nor at a signed hand-over from a previous file: give the earlier files too, oldest first", e.Seq)
				}
				if handOver {
					recent[e.CPSeq] = e.CPHash
				}
				if e.Phase == PhaseBreak {
					res.Break = e.Note
				}
			} else {
				if e.Seq != prevSeq+1 {
					return res, bad(e.Seq, "seq %d follows seq %d: %d line(s) removed or reordered", e.Seq, prevSeq, int64(e.Seq)-int64(prevSeq)-1)
				}
				if e.Prev != prevHash {
					return res, bad(e.Seq, "seq %d does not follow the line before it (that line was edited, or lines were removed or reordered)", e.Seq)
				}
			}
			if signed {
				if err := checkSignature(&e, keys); err != nil {
					return res, bad(e.Seq, "seq %d (%s): %v", e.Seq, e.Phase, err)
				}
				if res.Log != "" && e.Log != res.Log {
					return res, bad(e.Seq, "seq %d is signed for log %s, not %s (lines from another log)", e.Seq, e.Log, res.Log)
				}
				res.Log = e.Log
				if e.CPSeq == 0 {
					if e.Seq != 1 || e.CPHash != Genesis || (e.Phase != PhaseGenesis && e.Phase != PhaseBreak) {
						return res, bad(e.Seq, "seq %d: a signed start of a log that is not its first line", e.Seq)
					}
				} else if h, ok := recent[e.CPSeq]; !ok || h != e.CPHash {
					return res, bad(e.Seq, "seq %d vouches for seq %d with a hash that line does not have (lines were edited, or the checkpoint moved)", e.Seq, e.CPSeq)
				}
				clear(recent)
				res.Checkpoints++
				res.LastSigned, res.LastSignedSeq = e.Time, e.Seq
				res.Tail = 0
				lastExact = e.CPSeq == e.Seq-1
			} else {
				res.Tail++
				lastExact = false
			}
			if o != nil {
				if len(recent) >= MaxUnsigned {
					return res, bad(e.Seq, "more than %d lines without a signed checkpoint", MaxUnsigned)
				}
				recent[e.Seq] = hash
			}
			prevHash, prevSeq = hash, e.Seq
			res.Lines++
			res.LastSeq, res.LastHash = e.Seq, hash
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return res, &BrokenError{File: f.Name, Line: n + 1, Reason: fmt.Sprintf("line longer than %d bytes", MaxLine)}
			}
			return res, fmt.Errorf("audit: read %s: %w", f.Name, err)
		}
	}
	if !started {
		return res, errors.New("audit: no lines to verify")
	}
	if o == nil {
		return res, nil
	}
	switch {
	case res.Checkpoints == 0:
		return res, &IncompleteError{Reason: "no signed checkpoint: nothing vouches for these lines"}
	case !lastExact:
		return res, &IncompleteError{Reason: fmt.Sprintf("%d line(s) after the last signed checkpoint (seq %d, %s): the end of the log is not vouched for (cut, or pecetd still running: verify again after the next checkpoint)",
			res.Tail, res.LastSignedSeq, res.LastSigned.UTC().Format(time.RFC3339))}
	case o.MaxAge > 0 && o.Now.Sub(res.LastSigned) > o.MaxAge:
		return res, &IncompleteError{Reason: fmt.Sprintf("the last signed checkpoint (seq %d, %s) is older than %v: later lines may have been cut",
			res.LastSignedSeq, res.LastSigned.UTC().Format(time.RFC3339), o.MaxAge)}
	}
	return res, nil
}
