package audit

import (
	"encoding/json"
	"testing"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

func sameAsJSON(t *testing.T, e Event) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, ok := appendEvent(nil, &e)
	if !ok {
		// The fallback: encode must then give json.Marshal's bytes, or
		// refuse a line longer than MaxLine (the body, the hash member of
		// 64 hex digits and "}\n").
		line, _, err := encode(e)
		tooLong := werr == nil && len(want)-1+len(hashKey)+64+3 > MaxLine
		if (err != nil) != (werr != nil || tooLong) {
			t.Fatalf("encode: %v, json.Marshal: %v, %d bytes", err, werr, len(want))
		}
		if err == nil && string(line[:len(want)-1]) != string(want[:len(want)-1]) {
			t.Fatalf("encode fallback\n got %s\nwant %s", line, want)
		}
		return
	}
	if werr != nil || string(got) != string(want) {
		t.Fatalf("appendEvent\n got %s\nwant %s (%v)", got, want, werr)
	}
}

// TestAppendEventMatchesJSON: the hand-written encoder writes what
// json.Marshal writes, or leaves the event to it.
func TestAppendEventMatchesJSON(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 123000000, time.UTC)
	full := Event{Time: at, Seq: 7, Phase: PhaseEnd, Call: "dc0f66bdda653be2", Caller: "officer", Role: "officer,client",
		RPC: pecetv1.KeyService_RotateKey_FullMethodName, Key: "client-sign", Version: 2, InputSHA256: InputHash([]byte("x")),
		Request: "r1", Archive: "root=00ff count=3", Outcome: OutcomeOK, Code: "OK", Prev: Genesis}
	for _, tt := range []struct {
		name string
		e    Event
	}{
		{"all members", full},
		{"signed line", Event{Time: at, Seq: 9, Phase: PhaseCheckpoint, Log: "0123456789abcdef0123456789abcdef", CPSeq: 8,
			CPHash: Genesis, KeyID: "0011223344556677", Sig: "MEUCIQ+/=", Prev: Genesis}},
		{"batch item", Event{Time: at, Seq: 8, Phase: PhaseItem, Call: "a1", Caller: "client", RPC: pecetv1.SignService_SignDigests_FullMethodName,
			Key: "client-sign", Version: 1, InputSHA256: InputHash([]byte("d")), Outcome: OutcomeError, Code: "InvalidArgument", Batch: "b1", Item: 1000, Prev: Genesis}},
		{"break note", Event{Time: at, Seq: 1, Phase: PhaseBreak, Note: "the file ends at seq 3 <cut>", Prev: Genesis}},
		{"only the required", Event{Time: at, Seq: 1, Phase: PhaseStart, Prev: Genesis}},
		{"empty", Event{}},
		{"whole seconds", Event{Time: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Seq: 1, Phase: "begin"}},
		{"negative version", Event{Time: at, Seq: 1 << 62, Phase: "begin", Version: -3}},
		{"offset zone", Event{Time: at.In(time.FixedZone("CET", 3600)), Seq: 2, Phase: "begin"}},
		{"zone with seconds", Event{Time: at.In(time.FixedZone("LMT", 3601)), Seq: 2, Phase: "begin"}},
		{"year 10000", Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Seq: 2, Phase: "begin"}},
		{"quote", Event{Time: at, Seq: 3, Phase: "begin", Caller: `a"b`}},
		{"backslash", Event{Time: at, Seq: 3, Phase: "begin", Key: `a\b`}},
		{"html", Event{Time: at, Seq: 3, Phase: "begin", Caller: "<a&b>"}},
		{"control", Event{Time: at, Seq: 3, Phase: "begin", Caller: "a\nb\x01"}},
		{"non-ASCII", Event{Time: at, Seq: 3, Phase: "begin", Caller: "Jiří Novák"}},
		{"invalid UTF-8", Event{Time: at, Seq: 3, Phase: "begin", Caller: "\xff\xfe"}},
		{"line separator", Event{Time: at, Seq: 3, Phase: "begin", Caller: "a\u2028b"}},
		{"DEL", Event{Time: at, Seq: 3, Phase: "begin", Caller: "a\x7fb"}},
	} {
		t.Run(tt.name, func(t *testing.T) { sameAsJSON(t, tt.e) })
	}
	if _, ok := appendEvent(nil, &full); !ok {
		t.Error("a plain event fell back to json.Marshal")
	}
}

// FuzzAppendEvent: for any strings and numbers, appendEvent writes
// json.Marshal's bytes or leaves the event to it.
func FuzzAppendEvent(f *testing.F) {
	f.Add("officer", "client-sign", pecetv1.SignService_Sign_FullMethodName, "end", int64(1777629600123000000), 7, 3)
	f.Add(`a"<\`, "\xff", "\u2028", "", int64(0), 0, -1)
	f.Fuzz(func(t *testing.T, caller, key, rpc, phase string, nanos int64, offMin, version int) {
		at := time.Unix(0, nanos).In(time.FixedZone("", (offMin%1440)*60))
		sameAsJSON(t, Event{Time: at, Seq: uint64(nanos), Phase: phase, Caller: caller, Key: key, RPC: rpc, Version: version, Prev: Genesis})
	})
}
