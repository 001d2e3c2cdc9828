package soak

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/faultinject"
)

var t0 = time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func rec(op, input, code string, from, to int) Record {
	return Record{Op: op, Input: input, Code: code, Start: at(from), End: at(to)}
}

func TestCheckCalls(t *testing.T) {
	windows := []faultinject.Window{{N: 1, Kind: "remove", Start: at(1000), End: at(2000)}}
	wrong := rec("decrypt", "d1", "OK", 10, 20)
	wrong.Wrong = true
	setup := rec("sign", "s0", "OK", 0, 5)
	setup.Phase = "setup"
	tests := []struct {
		name string
		recs []Record
		want Calls
	}{
		{"ok", []Record{setup, rec("sign", "s1", "OK", 10, 20), rec("verify", "", "OK", 20, 30)},
			Calls{Total: 2, Setup: 1, OK: 2}},
		{"error inside a window", []Record{rec("sign", "s1", "Unavailable", 1500, 1501)},
			Calls{Total: 1, InWindow: 1}},
		{"error overlapping a window's start", []Record{rec("decrypt", "d1", "DeadlineExceeded", 900, 1001)},
			Calls{Total: 1, InWindow: 1}},
		{"TSA systemFailure inside a window", []Record{rec("timestamp", "t1", "systemFailure", 1100, 1200)},
			Calls{Total: 1, InWindow: 1}},
		{"error after the window", []Record{rec("sign", "s1", "Unavailable", 2001, 2002)},
			Calls{Total: 1, OutOfWindow: 1}},
		{"unexpected code inside a window", []Record{rec("decrypt", "d1", "InvalidArgument", 1500, 1501)},
			Calls{Total: 1, InWindow: 1, Unexpected: 1}},
		{"wrong answer", []Record{wrong}, Calls{Total: 1, Wrong: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckCalls(tc.recs, windows)
			if got.Total != tc.want.Total || got.Setup != tc.want.Setup || got.OK != tc.want.OK || got.Wrong != tc.want.Wrong ||
				got.InWindow != tc.want.InWindow || got.OutOfWindow != tc.want.OutOfWindow || got.Unexpected != tc.want.Unexpected {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			bad := tc.want.Wrong + tc.want.OutOfWindow + tc.want.Unexpected
			if (bad > 0) != (len(got.Examples) > 0) {
				t.Fatalf("examples %q for %d bad calls", got.Examples, bad)
			}
		})
	}
}

func begin(call, input string) audit.Event {
	return audit.Event{Phase: audit.PhaseBegin, Call: call, RPC: pecetv1.SignService_Sign_FullMethodName, InputSHA256: input}
}

func end(call, code string) audit.Event {
	ev := audit.Event{Phase: audit.PhaseEnd, Call: call, RPC: pecetv1.SignService_Sign_FullMethodName, Outcome: audit.OutcomeOK}
	if code != "OK" {
		ev.Outcome, ev.Code = audit.OutcomeError, code
	}
	return ev
}

func TestCheckAudit(t *testing.T) {
	wrong := rec("sign", "w", "OK", 0, 1)
	wrong.Wrong = true
	type counts struct{ answered, matched, cut, cutAudited, missing, dup, unfinished, orphans, unknown, differs int }
	tests := []struct {
		name   string
		recs   []Record
		events []audit.Event
		want   counts
	}{
		{"one pair per answered call",
			[]Record{rec("sign", "a", "OK", 0, 1), rec("sign", "b", "Unavailable", 0, 1), rec("verify", "", "OK", 0, 1), wrong,
				rec("timestamp", "c", "systemFailure", 0, 1)},
			[]audit.Event{{Phase: audit.PhaseStart}, begin("1", "a"), begin("2", "b"), end("2", "Unavailable"), end("1", "OK"),
				begin("3", "a2"), end("3", "OK"), begin("4", "c"), end("4", "OK"), begin("5", "w"), end("5", "OK"), {Phase: audit.PhaseStop}},
			counts{answered: 4, matched: 4, unknown: 1}}, // a2: audited, never sent
		{"a lost begin", []Record{rec("sign", "a", "OK", 0, 1)}, nil, counts{answered: 1, missing: 1}},
		{"a lost end", []Record{rec("sign", "a", "OK", 0, 1)}, []audit.Event{begin("1", "a")}, counts{answered: 1, unfinished: 1}},
		{"an end without its begin", nil, []audit.Event{end("9", "OK")}, counts{orphans: 1}},
		{"a call audited twice", []Record{rec("sign", "a", "OK", 0, 1)},
			[]audit.Event{begin("1", "a"), end("1", "OK"), begin("2", "a"), end("2", "OK")}, counts{answered: 1, dup: 1}},
		{"an end written twice", []Record{rec("sign", "a", "OK", 0, 1)},
			[]audit.Event{begin("1", "a"), end("1", "OK"), end("1", "OK")}, counts{answered: 1, matched: 1, dup: 1}},
		{"outcome differs", []Record{rec("sign", "a", "OK", 0, 1)},
			[]audit.Event{begin("1", "a"), end("1", "Unavailable")}, counts{answered: 1, differs: 1}},
		{"cut calls: audited or not",
			[]Record{rec("sign", "a", "DeadlineExceeded", 0, 1), rec("sign", "b", "DeadlineExceeded", 0, 1)},
			[]audit.Event{begin("1", "a"), end("1", "OK")}, counts{cut: 2, cutAudited: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := CheckAudit(tc.recs, tc.events)
			got := counts{m.Answered, m.Matched, m.Cut, m.CutAudited, m.Missing, m.Duplicated, m.Unfinished, m.Orphans, m.Unknown, m.OutcomeDiffers}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v; examples %q", got, tc.want, m.Examples)
			}
		})
	}
}

func TestReportFailures(t *testing.T) {
	good := Report{Calls: Calls{Total: 10, OK: 9, InWindow: 1}, Faults: map[string]int{"remove": 1},
		Audit: AuditMatch{Answered: 10, Matched: 10}}
	if f := good.Failures(); len(f) != 0 {
		t.Fatalf("a clean run fails: %q", f)
	}
	for name, spoil := range map[string]func(*Report){
		"wrong":          func(r *Report) { r.Calls.Wrong = 1 },
		"outside":        func(r *Report) { r.Calls.OutOfWindow = 1 },
		"code":           func(r *Report) { r.Calls.Unexpected = 1 },
		"no faults":      func(r *Report) { r.Faults = nil },
		"chain":          func(r *Report) { r.AuditVerifyExit = 1 },
		"missing":        func(r *Report) { r.Audit.Missing = 1 },
		"duplicated":     func(r *Report) { r.Audit.Duplicated = 1 },
		"unfinished":     func(r *Report) { r.Audit.Unfinished = 1 },
		"orphan":         func(r *Report) { r.Audit.Orphans = 1 },
		"unknown":        func(r *Report) { r.Audit.Unknown = 1 },
		"differs":        func(r *Report) { r.Audit.OutcomeDiffers = 1 },
		"pecetd exit":    func(r *Report) { r.PecetdExit = 1 },
		"nothing worked": func(r *Report) { r.Calls.OK = 0 },
	} {
		r := good
		spoil(&r)
		if len(r.Failures()) != 1 {
			t.Errorf("%s: failures %q", name, r.Failures())
		}
	}
}

func TestRSSSlope(t *testing.T) {
	r := Report{}
	for i := range 20 {
		r.RSS = append(r.RSS, Sample{At: time.Duration(i) * 30 * time.Second, RSSKiB: 30000 + int64(i)*500})
	}
	// 500 KiB per 30 s is 1000 KiB/min.
	if s := r.RSSSlope(); s < 999 || s > 1001 {
		t.Fatalf("slope %.1f, want 1000", s)
	}
	if r.RSSFirst() != 30000 || r.RSSLast() != 39500 || r.RSSMax() != 39500 {
		t.Fatalf("first %d last %d max %d", r.RSSFirst(), r.RSSLast(), r.RSSMax())
	}
	if !strings.Contains(r.Summary(), "+1000 KiB/min") {
		t.Fatalf("summary:\n%s", r.Summary())
	}
}

func TestReadWindowsAndRecords(t *testing.T) {
	ws, err := ReadWindows(strings.NewReader(`{"n":1,"kind":"remove","what":"x","start":"2026-11-23T17:00:00Z","end":"2026-11-23T17:00:02Z"}` + "\n"))
	if err != nil || len(ws) != 1 || ws[0].End.Sub(ws[0].Start) != 2*time.Second {
		t.Fatalf("%+v %v", ws, err)
	}
	if _, err := ReadRecords(strings.NewReader("{\n")); err == nil {
		t.Fatal("a broken line was read")
	}
}

// TestRunChecksSchedule: a fault schedule pecetd would refuse stops the
// soak at once, with the parser's error (faultinject.ParseSchedule, the
// one pecetd uses), before the peak measurement starts any pecetd.
func TestRunChecksSchedule(t *testing.T) {
	for _, spec := range []string{"50ms", "3s:unplug"} {
		_, err := Run(context.Background(), Options{Faults: spec, Dir: t.TempDir(), Pecetd: "/nonexistent/pecetd", Pecet: "/nonexistent/pecet"})
		if !errors.Is(err, faultinject.ErrSchedule) {
			t.Errorf("faults %q: %v, want ErrSchedule", spec, err)
		}
	}
}
