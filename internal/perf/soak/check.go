package soak

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/faultinject"
)

// Record is one call of `pecet bench --record` (cmd/pecet/benchmix.go).
type Record struct {
	Phase string    `json:"phase"` // "setup" for calls before the load
	W     int       `json:"w"`
	Op    string    `json:"op"`
	Input string    `json:"input_sha256"` // the audit log's input_sha256; empty: not audited
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Code  string    `json:"code"`
	Wrong bool      `json:"wrong"`
}

// faultCodes are the codes a token fault may give a caller: the token
// gone or recovering, no session before the deadline, the deadline, and
// the TSA's own refusal when its key failed (an RFC 3161 REJECTION with
// systemFailure, a successful gRPC call).
var faultCodes = []string{"Unavailable", "ResourceExhausted", "DeadlineExceeded", refusal}

// refusal is the bench's code for a time-stamp refused with systemFailure.
const refusal = "systemFailure"

// cutCodes are the answers a caller gives itself when its deadline
// passes: the call may have reached pecetd (and been audited, with any
// outcome) or not.
var cutCodes = []string{"DeadlineExceeded", "Canceled"}

// Calls is what the load generator's records say.
type Calls struct {
	Total       int            `json:"total"` // load calls (setup calls apart)
	Setup       int            `json:"setup"`
	OK          int            `json:"ok"`
	Wrong       int            `json:"wrong"`
	ByOp        map[string]int `json:"by_op"`
	Errors      map[string]int `json:"errors"` // by gRPC code
	InWindow    int            `json:"errors_in_fault_windows"`
	OutOfWindow int            `json:"errors_outside_fault_windows"`
	// Unexpected are errors with a code no fault explains.
	Unexpected int      `json:"errors_unexpected_code"`
	Examples   []string `json:"examples,omitempty"` // first bad calls
}

// AuditMatch is the audit log set beside the calls.
type AuditMatch struct {
	Lines  int            `json:"lines"`
	Begins map[string]int `json:"begins"` // by RPC
	Ends   map[string]int `json:"ends"`
	Denied int            `json:"denied"`
	// Audited calls: answered (any code from the handler) and cut (the
	// caller's deadline; audited once or not at all).
	Answered       int `json:"answered_calls"`
	Matched        int `json:"answered_with_one_begin_and_end"`
	Cut            int `json:"cut_calls"`
	CutAudited     int `json:"cut_calls_audited"`
	Missing        int `json:"answered_without_audit"`
	Duplicated     int `json:"calls_audited_twice_or_more"`
	Unfinished     int `json:"begins_without_end"`
	Orphans        int `json:"ends_without_begin"`
	Unknown        int `json:"audited_inputs_nobody_sent"`
	OutcomeDiffers int `json:"end_outcome_differs_from_answer"`
	Examples       []string
}

// ReadRecords reads --record lines.
func ReadRecords(r io.Reader) ([]Record, error) { return readJSONLines[Record](r) }

// ReadWindows reads pecetd's fault log (internal/daemon/faultinject.go):
// one faultinject.Window a line.
func ReadWindows(r io.Reader) ([]faultinject.Window, error) {
	return readJSONLines[faultinject.Window](r)
}

func readJSONLines[T any](r io.Reader) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), audit.MaxLine)
	for n := 1; sc.Scan(); n++ {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

// ReadAudit reads an audit log's events (the chain is checked apart, by
// `pecet audit verify`).
func ReadAudit(path string) ([]audit.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), audit.MaxLine+1)
	for n := 1; sc.Scan(); n++ {
		ev, _, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

// CheckCalls counts the calls and attributes each error to a fault window
// its time overlaps (or to none).
func CheckCalls(recs []Record, windows []faultinject.Window) Calls {
	c := Calls{ByOp: map[string]int{}, Errors: map[string]int{}}
	for _, r := range recs {
		if r.Phase == "setup" {
			c.Setup++ // the bench stops when one fails
			continue
		}
		c.Total++
		c.ByOp[r.Op]++
		switch {
		case r.Wrong:
			c.Wrong++
			c.example(fmt.Sprintf("wrong answer: %s at %s", r.Op, r.Start.Format(time.StampMicro)))
		case r.Code == "OK":
			c.OK++
		default:
			c.Errors[r.Code]++
			in := inWindow(windows, r.Start, r.End)
			if in {
				c.InWindow++
			} else {
				c.OutOfWindow++
				c.example(fmt.Sprintf("%s %s from %s to %s: outside every fault window", r.Op, r.Code, r.Start.Format(time.StampMicro), r.End.Format(time.StampMicro)))
			}
			if !slices.Contains(faultCodes, r.Code) {
				c.Unexpected++
				if in {
					c.example(fmt.Sprintf("%s %s at %s: a code no fault explains", r.Op, r.Code, r.Start.Format(time.StampMicro)))
				}
			}
		}
	}
	return c
}

func (c *Calls) example(s string) {
	if len(c.Examples) < 20 {
		c.Examples = append(c.Examples, s)
	}
}

func inWindow(ws []faultinject.Window, from, to time.Time) bool {
	for _, w := range ws {
		if from.Before(w.End) && to.After(w.Start) {
			return true
		}
	}
	return false
}

// CheckAudit sets the audit events beside the calls. A call that got an
// answer from pecetd (OK, a wrong answer, or an error code its handler
// gave) must have exactly one begin line with its input_sha256 and exactly
// one end line for that begin, whose outcome agrees with the answer. A
// call its caller's deadline cut (DeadlineExceeded, Canceled) may have
// reached pecetd or not: it has one begin and end or none. Every begin has
// one end, every end a begin, and no audited input is one nobody sent.
// Every call's input is unique (fresh random data), so the input hash
// identifies the call.
func CheckAudit(recs []Record, events []audit.Event) AuditMatch {
	m := AuditMatch{Begins: map[string]int{}, Ends: map[string]int{}}
	begins := map[string][]audit.Event{} // by input
	ends := map[string]audit.Event{}     // by call id
	endCount := map[string]int{}
	var beginCalls []string
	for _, ev := range events {
		m.Lines++
		switch ev.Phase {
		case audit.PhaseBegin:
			m.Begins[short(ev.RPC)]++
			begins[ev.InputSHA256] = append(begins[ev.InputSHA256], ev)
			beginCalls = append(beginCalls, ev.Call)
		case audit.PhaseEnd:
			m.Ends[short(ev.RPC)]++
			ends[ev.Call] = ev
			endCount[ev.Call]++
		case audit.PhaseDenied:
			m.Denied++
		}
	}
	seenBegin := map[string]bool{}
	for _, id := range beginCalls {
		if seenBegin[id] {
			m.Duplicated++
			m.example("call id %s begun twice", id)
		}
		seenBegin[id] = true
		if endCount[id] == 0 {
			m.Unfinished++
			m.example("call %s: begin without end", id)
		}
	}
	for id, n := range endCount {
		if !seenBegin[id] {
			m.Orphans++
			m.example("call %s: end without begin", id)
		}
		if n > 1 {
			m.Duplicated++
			m.example("call %s: %d end lines", id, n)
		}
	}
	sent := map[string]bool{}
	for _, r := range recs {
		if r.Input == "" {
			continue
		}
		sent[r.Input] = true
		bs := begins[r.Input]
		cut := slices.Contains(cutCodes, r.Code)
		if cut {
			m.Cut++
		} else {
			m.Answered++
		}
		switch {
		case len(bs) > 1:
			m.Duplicated++
			m.example("%s %s: %d begin lines", r.Op, shortHash(r.Input), len(bs))
		case len(bs) == 0 && cut:
		case len(bs) == 0:
			m.Missing++
			m.example("%s %s answered %s at %s: no audit line", r.Op, shortHash(r.Input), r.Code, r.End.Format(time.StampMicro))
		default:
			if cut {
				m.CutAudited++
				continue
			}
			end, ok := ends[bs[0].Call]
			if !ok {
				continue // counted as unfinished
			}
			want := r.Code
			if r.Wrong || r.Code == refusal {
				want = "OK" // an answer in the call's own terms
			}
			got := end.Code
			if end.Outcome == audit.OutcomeOK {
				got = "OK"
			}
			if got != want {
				m.OutcomeDiffers++
				m.example("%s %s: answered %s, audited %s", r.Op, shortHash(r.Input), want, got)
				continue
			}
			m.Matched++
		}
	}
	for in, bs := range begins {
		if !sent[in] {
			m.Unknown += len(bs)
			m.example("audited input %s (%s) that no recorded call sent", shortHash(in), short(bs[0].RPC))
		}
	}
	return m
}

func (m *AuditMatch) example(format string, a ...any) {
	if len(m.Examples) < 20 {
		m.Examples = append(m.Examples, fmt.Sprintf(format, a...))
	}
}

func short(rpc string) string { return rpc[strings.LastIndex(rpc, "/")+1:] }

func shortHash(h string) string { return h[:min(len(h), 12)] }
