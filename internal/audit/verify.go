package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Verify reads the files in order and checks every line and the links
// between them, including across files (rotation). When the first file
// does not begin at seq 1, the chain is checked from its first line on
// (Result.FirstSeq says where). A *BrokenError names the first bad line;
// other errors are read failures.
func Verify(files ...File) (Result, error) {
	var res Result
	prevHash, prevSeq, started := "", uint64(0), false
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
			if !started {
				started = true
				res.FirstSeq = e.Seq
				if e.Seq == 1 && e.Prev != Genesis {
					return res, bad(e.Seq, "seq 1 does not start a log (prev is not the genesis hash)")
				}
			} else {
				if e.Seq != prevSeq+1 {
					return res, bad(e.Seq, "seq %d follows seq %d: %d line(s) removed or reordered", e.Seq, prevSeq, int64(e.Seq)-int64(prevSeq)-1)
				}
				if e.Prev != prevHash {
					return res, bad(e.Seq, "seq %d does not follow the line before it (that line was edited, or lines were removed or reordered)", e.Seq)
				}
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
	return res, nil
}
