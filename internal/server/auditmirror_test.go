package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
)

// lockedBuffer is a bytes.Buffer for a slog handler written from many
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records returns the mirrored audit records as "phase rpc outcome key".
func (l *lockedBuffer) records(t *testing.T) map[string]bool {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]bool{}
	for _, line := range bytes.Split(bytes.TrimSpace(l.b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r struct{ Msg, Phase, RPC, Outcome, Key string }
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("mirror record %s: %v", line, err)
		}
		if r.Msg == "audit" {
			out[r.Phase+" "+r.RPC+" "+r.Outcome+" "+r.Key] = true
		}
	}
	return out
}

// TestAuditMirrorDefault: with the default mirror level (audit.mirror:
// errors) the stderr copy gets denied calls, failed calls and key
// lifecycle changes, and nothing of a successful key operation, whose
// lines are in the file all the same (docs/operations.md "Logs and the
// audit log").
func TestAuditMirrorDefault(t *testing.T) {
	buf := &lockedBuffer{}
	f := newFixtureOpts(t, fixtureOpts{auditMirror: slog.New(slog.NewJSONHandler(buf, nil))})
	ctx := ctxT(t)
	sign := pecetv1.SignService_Sign_FullMethodName
	rotate := pecetv1.KeyService_RotateKey_FullMethodName
	digest := &pecetv1.SignRequest_Digest{Digest: make([]byte, 32)}
	calls := []struct {
		name string
		cn   string
		run  func(cn string) error
		code codes.Code
	}{
		{"signed", "client", func(cn string) error {
			_, err := pecetv1.NewSignServiceClient(f.dial(t, cn)).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: digest})
			return err
		}, codes.OK},
		{"key not allowed", "client", func(cn string) error {
			_, err := pecetv1.NewSignServiceClient(f.dial(t, cn)).Sign(ctx, &pecetv1.SignRequest{Key: "tsa", Input: digest})
			return err
		}, codes.PermissionDenied},
		{"role not allowed", "gateway", func(cn string) error {
			_, err := pecetv1.NewSignServiceClient(f.dial(t, cn)).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: digest})
			return err
		}, codes.PermissionDenied},
		{"no such key", "wide-client", func(cn string) error {
			_, err := pecetv1.NewSignServiceClient(f.dial(t, cn)).Sign(ctx, &pecetv1.SignRequest{Key: "nope", Input: digest})
			return err
		}, codes.NotFound},
		{"rotated", "officer", func(cn string) error {
			_, err := pecetv1.NewKeyServiceClient(f.dial(t, cn)).RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: "client-sign"})
			return err
		}, codes.OK},
	}
	for _, c := range calls {
		if err := c.run(c.cn); status.Code(err) != c.code {
			t.Fatalf("%s: %v, want %v", c.name, err, c.code)
		}
	}
	got := buf.records(t)
	for _, want := range []string{
		"end " + sign + " denied tsa",            // the handler refused the key
		"denied " + sign + " denied client-sign", // authorisation refused the role
		"end " + sign + " error nope",
		"begin " + rotate + "  client-sign",
		"end " + rotate + " ok client-sign",
	} {
		if !got[want] {
			t.Errorf("not mirrored: %q (mirrored: %v)", want, got)
		}
	}
	for _, unwanted := range []string{"begin " + sign + "  client-sign", "end " + sign + " ok client-sign", "begin " + sign + "  tsa"} {
		if got[unwanted] {
			t.Errorf("mirrored at the default level: %q", unwanted)
		}
	}
	// The file has every line, mirrored or not.
	var inFile int
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC == sign && e.Key == "client-sign" && e.Outcome == audit.OutcomeOK {
			inFile++
		}
	}
	if inFile != 1 {
		t.Errorf("%d successful Sign end lines in the file, want 1", inFile)
	}
}
