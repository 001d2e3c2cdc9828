package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/testtool"
)

// heldSync is the audit log's fsync in these tests: a real fdatasync that
// can be held (hold) or failed (fail), recording how many bytes of the
// file the completed fsyncs covered (the size when each began).
type heldSync struct {
	mu      sync.Mutex
	hold    chan struct{} // non-nil: every fsync waits until it is closed
	started chan struct{}
	fail    error
	durable int64
}

func (h *heldSync) sync(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h.mu.Lock()
	hold, fail := h.hold, h.fail
	h.mu.Unlock()
	if hold != nil {
		select {
		case h.started <- struct{}{}:
		default:
		}
		<-hold
	}
	if fail != nil {
		return fail
	}
	if err := f.Sync(); err != nil {
		return err
	}
	h.mu.Lock()
	h.durable = max(h.durable, st.Size())
	h.mu.Unlock()
	return nil
}

func (h *heldSync) set(hold bool, fail error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.hold; old != nil && !hold {
		close(old) // nil after the first release: safe to call twice
	}
	if hold && h.hold == nil {
		h.hold, h.started = make(chan struct{}), make(chan struct{}, 1)
	}
	if !hold {
		h.hold = nil
	}
	h.fail = fail
}

// beginLineEnd returns where the begin line of rpc ends in the audit file
// (0 if there is none).
func beginLineEnd(t *testing.T, path, rpc string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		off += int64(len(line))
		if bytes.Contains(line, []byte(`"phase":"begin"`)) && bytes.Contains(line, []byte(`"rpc":"`+rpc+`"`)) {
			return off
		}
	}
	return 0
}

// TestAuditSyncBeginHoldsResults: with audit.sync: begin, no key operation's
// result (unary Sign, DecryptStream output, POST /tsa response) leaves
// pecetd while the fsync covering its begin line is held, and each leaves
// once it completes; the end lines become durable by the background flush.
func TestAuditSyncBeginHoldsResults(t *testing.T) {
	h := &heldSync{}
	f := newFixtureOpts(t, fixtureOpts{auditSync: audit.SyncBegin, auditSyncFile: h.sync, auditFlush: 10 * time.Millisecond})
	ctx := ctxT(t)
	er, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client")).Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("filing"), RecipientKeys: []string{"gateway-decrypt"}, Cipher: pecetv1.ContentCipher_AES_256_CBC})
	if err != nil {
		t.Fatal(err)
	}
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	gw := f.dial(t, "gateway")
	web := httptest.NewServer(f.srv.HTTP())
	defer web.Close()
	calls := []struct {
		rpc string
		run func() error
	}{
		{pecetv1.SignService_Sign_FullMethodName, func() error {
			_, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}})
			return err
		}},
		{methodDecryptStream, func() error {
			got, _, err := decryptStream(ctx, gw, "", er.GetEnveloped(), 1<<10)
			if err == nil && string(got) != "filing" {
				err = errors.New("wrong plaintext")
			}
			return err
		}},
		{"POST /tsa", func() error {
			resp, err := http.Post(web.URL+"/tsa", "application/timestamp-query", bytes.NewReader(tsaQuery(t)))
			if err == nil {
				resp.Body.Close()
			}
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.rpc, func(t *testing.T) {
			h.set(true, nil)
			defer h.set(false, nil) // a failed check must not leave the log held
			done := make(chan error, 1)
			go func() { done <- c.run() }()
			select {
			case <-h.started:
			case err := <-done:
				t.Fatalf("the call returned (%v) before any fsync of its begin line began", err)
			}
			select {
			case err := <-done:
				t.Fatalf("the call returned (%v) while the fsync of its begin line was held", err)
			case <-time.After(150 * time.Millisecond):
			}
			h.set(false, nil)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			end := beginLineEnd(t, f.auditFile, c.rpc)
			h.mu.Lock()
			durable := h.durable
			h.mu.Unlock()
			if end == 0 || durable < end {
				t.Fatalf("begin line ends at %d, durable %d", end, durable)
			}
		})
	}
	// The end lines nobody waited for are flushed within the interval.
	st, _ := os.Stat(f.auditFile)
	testtool.Eventually(t, 5*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.durable >= st.Size()
	}, "end lines durable (%d bytes)", st.Size())
	var ends int
	for _, e := range auditEvents(t, f.auditFile) { // also verifies the chain
		if e.Phase == audit.PhaseEnd {
			ends++
		}
	}
	if ends != len(calls) {
		t.Fatalf("%d end lines for %d calls", ends, len(calls))
	}
}

// TestAuditSyncBeginFsyncFails: with audit.sync: begin, a failed fsync of
// the begin line fails the call with Unavailable and no signature leaves;
// later calls are refused too (fail closed).
func TestAuditSyncBeginFsyncFails(t *testing.T) {
	h := &heldSync{}
	f := newFixtureOpts(t, fixtureOpts{auditSync: audit.SyncBegin, auditSyncFile: h.sync})
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	h.set(false, errors.New("injected fsync failure"))
	for i := range 2 {
		resp, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}})
		wantCode(t, "sign", err, codes.Unavailable)
		if len(resp.GetSignature()) != 0 {
			t.Fatalf("call %d: a signature left without a durable begin line", i)
		}
	}
	digest := sha256.Sum256([]byte("d"))
	_, err := pecetv1.NewTimestampServiceClient(f.dial(t, "client")).Timestamp(context.Background(), &pecetv1.TimestampRequest{Digest: digest[:]})
	wantCode(t, "timestamp", err, codes.Unavailable)
}

// TestAuditSyncBeginHoldsStreamOutput: with audit.sync: begin or event, a
// DecryptStream sends no plaintext (not only no final status) while the
// fsync of its begin line is held.
func TestAuditSyncBeginHoldsStreamOutput(t *testing.T) {
	// Under event too: a stream's output leaves before its end line, so its
	// begin line is written with BeginAhead.
	for _, policy := range []audit.SyncPolicy{audit.SyncBegin, audit.SyncEvent} {
		t.Run(string(policy), func(t *testing.T) { holdsStreamOutput(t, policy) })
	}
}

func holdsStreamOutput(t *testing.T, policy audit.SyncPolicy) {
	h := &heldSync{}
	f := newFixtureOpts(t, fixtureOpts{auditSync: policy, auditSyncFile: h.sync})
	ctx := ctxT(t)
	data := bytes.Repeat([]byte("filing "), 100<<10) // several output messages
	er, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client")).Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{"gateway-decrypt"}, Cipher: pecetv1.ContentCipher_AES_256_CBC})
	if err != nil {
		t.Fatal(err)
	}
	h.set(true, nil)
	defer h.set(false, nil)
	st, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway")).DecryptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pecetv1.DecryptStreamRequest{Enveloped: er.GetEnveloped()}); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseSend()
	first := make(chan error, 1)
	var got []byte
	go func() {
		r, err := st.Recv()
		got = append(got, r.GetData()...)
		first <- err
	}()
	<-h.started
	select {
	case err := <-first:
		t.Fatalf("stream output (or its end: %v) arrived while the begin line's fsync was held", err)
	case <-time.After(150 * time.Millisecond):
	}
	h.set(false, nil)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.GetData()...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("decrypted %d bytes, want %d", len(got), len(data))
	}
}
