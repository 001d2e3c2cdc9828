package audit

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// countingHandler is a slog.Handler that records the seq of every record
// it is asked to handle (the mirror's only I/O) and how often.
type countingHandler struct {
	mu   sync.Mutex
	seqs []uint64
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "seq" {
			h.mu.Lock()
			h.seqs = append(h.seqs, a.Value.Uint64())
			h.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// TestMirrorLevels: each audit.mirror level ships the lines it promises
// (docs/operations.md "Logs and the audit log") and hands no other line to
// the handler, while the file gets every line.
func TestMirrorLevels(t *testing.T) {
	sign, rotate := pecetv1.SignService_Sign_FullMethodName, pecetv1.KeyService_RotateKey_FullMethodName
	// The lines in the order they are written (seq 1, 2, …).
	events := []Event{
		{Phase: PhaseStart},
		{Phase: PhaseBegin, RPC: sign, Key: "k"},
		{Phase: PhaseEnd, RPC: sign, Key: "k", Outcome: OutcomeOK},
		{Phase: PhaseBegin, RPC: sign, Key: "k"},
		{Phase: PhaseEnd, RPC: sign, Key: "k", Outcome: OutcomeError, Code: "NotFound"},
		{Phase: PhaseBegin, RPC: sign, Key: "other"},
		{Phase: PhaseEnd, RPC: sign, Key: "other", Outcome: OutcomeDenied, Code: "PermissionDenied"},
		{Phase: PhaseDenied, RPC: sign, Key: "k", Outcome: OutcomeDenied, Code: "PermissionDenied"},
		{Phase: PhaseBegin, RPC: rotate, Key: "k", Lifecycle: true},
		{Phase: PhaseEnd, RPC: rotate, Key: "k", Outcome: OutcomeOK, Lifecycle: true},
		{Phase: "reload", Caller: "pecetd", Outcome: "applied"},
		{Phase: PhaseStop},
		// A batch's item lines are outcomes like end lines: a success is
		// not mirrored below all, a failed item is.
		{Phase: PhaseItem, RPC: sign, Key: "k", Batch: "b", Item: 1, Outcome: OutcomeOK},
		{Phase: PhaseItem, RPC: sign, Key: "k", Batch: "b", Item: 2, Outcome: OutcomeError, Code: "InvalidArgument"},
	}
	for _, tt := range []struct {
		level MirrorLevel
		want  []uint64
	}{
		{MirrorNone, nil},
		{MirrorDenied, []uint64{1, 7, 8, 11, 12}},
		{"", []uint64{1, 5, 7, 8, 9, 10, 11, 12, 14}}, // the default: errors
		{MirrorErrors, []uint64{1, 5, 7, 8, 9, 10, 11, 12, 14}},
		{MirrorAll, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}},
	} {
		t.Run(string(tt.level), func(t *testing.T) {
			h := &countingHandler{}
			l := openT(t, Options{File: t.TempDir() + "/audit.log", Sync: SyncNone, Mirror: slog.New(h), MirrorLevel: tt.level})
			for _, e := range events {
				if err := l.Write(e); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(h.seqs, tt.want) {
				t.Errorf("mirrored seqs %v, want %v", h.seqs, tt.want)
			}
			if seq, _ := l.Head(); seq != uint64(len(events)) {
				t.Errorf("%d lines in the file, want %d", seq, len(events))
			}
		})
	}
	if _, err := Open(Options{MirrorLevel: "most"}); err == nil {
		t.Error("an unknown mirror level was accepted")
	}
}
