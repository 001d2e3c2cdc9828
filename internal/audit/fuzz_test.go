package audit

import (
	"bytes"
	"testing"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// FuzzParseLine: ParseLine never panics, stays within its bounds, and what
// it accepts re-encodes to the same line (so a hash it accepts is the hash
// of exactly those bytes).
func FuzzParseLine(f *testing.F) {
	good, _, _ := encode(Event{Seq: 1, Phase: PhaseBegin, Caller: "officer", RPC: pecetv1.SignService_Sign_FullMethodName, Key: "client-sign", Prev: Genesis})
	f.Add(bytes.TrimSuffix(good, []byte("\n")))
	f.Add([]byte(`{"hash":"` + Genesis + `"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"seq":1,"phase":"x","prev":"` + Genesis + `","seq":2` + hashKey + Genesis + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, hash, err := ParseLine(line)
		if err != nil {
			return
		}
		again, h2, err := encode(e)
		if err != nil {
			t.Fatalf("accepted line does not re-encode: %v", err)
		}
		if h2 != hash {
			// Accepted bytes that are not our canonical encoding (e.g.
			// other spacing) are fine as long as the hash is over them.
			return
		}
		if !bytes.Equal(bytes.TrimSuffix(again, []byte("\n")), line) && len(line) == len(again)-1 {
			t.Fatalf("same hash, different line:\n%s\n%s", line, again)
		}
	})
}
