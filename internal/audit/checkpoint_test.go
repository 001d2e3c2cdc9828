package audit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// auditToken is a SoftHSM token with an AUDIT key "audit" (EC P-256),
// certified by a throwaway CA, for one test.
type auditToken struct {
	ks  *keystore.Store
	pub crypto.PublicKey
}

func newAuditToken(t *testing.T) *auditToken {
	t.Helper()
	ks := softhsm.NewToken(t)
	ctx := context.Background()
	v, err := ks.CreateKey(ctx, "audit", keystore.PurposeAudit, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "audit test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "audit"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, ca, v.Public, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	if _, err := ks.ImportCertificate(ctx, "audit", v.Version, []*x509.Certificate{leaf, ca}); err != nil {
		t.Fatal(err)
	}
	return &auditToken{ks: ks, pub: v.Public}
}

func (a *auditToken) options() *CheckpointOptions {
	return &CheckpointOptions{Key: func(ctx context.Context) (CheckpointKey, error) {
		return a.ks.Signer(ctx, "audit", 0, keystore.PurposeAudit)
	}, State: a.ks, Interval: time.Hour}
}

func (a *auditToken) verify(t *testing.T, o VerifyOptions, paths ...string) (Result, error) {
	t.Helper()
	var fs []File
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, File{Name: filepath.Base(p), R: bytes.NewReader(b)})
	}
	o.Keys = append(o.Keys, a.pub)
	return VerifySigned(o, fs...)
}

// signedLog writes a closed signed log of n events (plus the genesis and
// the final checkpoint) and returns its path.
func (a *auditToken) signedLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, Options{File: path, Checkpoint: a.options()})
	writeN(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeLines(t *testing.T, path string, ls []string) {
	t.Helper()
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(strings.TrimSuffix(l, "\n") + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rechain recomputes every line's prev and hash after edit changed it, as
// a forger with write access to the file would: the unkeyed chain holds.
func rechain(t *testing.T, ls []string, edit func(*Event)) []string {
	t.Helper()
	prev := Genesis
	var out []string
	for _, s := range ls {
		e, _, err := ParseLine([]byte(strings.TrimSuffix(s, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		edit(&e)
		e.Prev = prev
		line, h, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		prev = h
		out = append(out, string(line))
	}
	return out
}

func TestSignedLogVerifies(t *testing.T) {
	a := newAuditToken(t)
	path := a.signedLog(t, 5)
	res, err := a.verify(t, VerifyOptions{MaxAge: time.Minute}, path)
	if err != nil || res.Lines != 7 || res.FirstSeq != 1 || res.Checkpoints != 2 || res.Tail != 0 || res.Log == "" {
		t.Fatalf("VerifySigned = %+v, %v", res, err)
	}
	ls := lines(t, path)
	if !strings.Contains(ls[0], `"phase":"genesis"`) || !strings.Contains(ls[len(ls)-1], `"phase":"checkpoint"`) {
		t.Fatalf("first and last lines: %s … %s", ls[0], ls[len(ls)-1])
	}
	// Without the audit key nothing can be vouched for.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := os.ReadFile(path)
	var be *BrokenError
	if _, err := VerifySigned(VerifyOptions{Keys: []crypto.PublicKey{&other.PublicKey}}, File{Name: "audit.log", R: bytes.NewReader(b)}); !errors.As(err, &be) || !strings.Contains(be.Reason, "not among the given keys") {
		t.Fatalf("another key: %v", err)
	}
}

// TestRewrittenLogFails: a log rewritten with recomputed plain hashes
// passes the unkeyed chain (Verify) but not the signatures.
func TestRewrittenLogFails(t *testing.T) {
	a := newAuditToken(t)
	path := a.signedLog(t, 5)
	orig := lines(t, path)
	forged := func(e *Event) {
		if e.Key != "" {
			e.Key = "forged"
		}
	}
	cases := []struct {
		name  string
		lines []string
		want  error // *BrokenError or ErrIncomplete
		why   string
	}{
		{"every line rewritten, signed lines kept", rechain(t, orig, forged), nil, "vouches for seq"},
		{"signed lines dropped", rechain(t, orig[1:len(orig)-1], func(e *Event) { forged(e); e.Seq-- }), ErrIncomplete, "no signed checkpoint"},
		{"checkpoint re-pointed at the forged line", rechain(t, orig, func(e *Event) {
			forged(e)
			if e.Phase == PhaseCheckpoint {
				e.CPHash = strings.Repeat("1", 64)
			}
		}), nil, "signature does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			writeLines(t, p, c.lines)
			if _, err := verifyFiles(p); err != nil {
				t.Fatalf("the unkeyed chain should hold for this forgery: %v", err)
			}
			_, err := a.verify(t, VerifyOptions{}, p)
			var be *BrokenError
			if c.want == nil && (!errors.As(err, &be) || !strings.Contains(be.Reason, c.why)) {
				t.Fatalf("want broken %q, got %v", c.why, err)
			}
			if c.want != nil && (!errors.Is(err, c.want) || !strings.Contains(err.Error(), c.why)) {
				t.Fatalf("want %v %q, got %v", c.want, c.why, err)
			}
		})
	}
}

// TestCutTailIncomplete: a log whose end is not a signed checkpoint (newer
// than --max-age) is INCOMPLETE.
func TestCutTailIncomplete(t *testing.T) {
	a := newAuditToken(t)
	path := a.signedLog(t, 5)
	orig := lines(t, path)
	cases := []struct {
		name   string
		keep   int
		maxAge time.Duration
		now    time.Time
		why    string
	}{
		{"final checkpoint cut", len(orig) - 1, 0, time.Time{}, "after the last signed checkpoint"},
		{"three lines cut", len(orig) - 3, 0, time.Time{}, "after the last signed checkpoint"},
		{"whole log, checkpoint too old", len(orig), 10 * time.Minute, time.Now().Add(time.Hour), "older than 10m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			writeLines(t, p, orig[:c.keep])
			_, err := a.verify(t, VerifyOptions{MaxAge: c.maxAge, Now: c.now}, p)
			var ie *IncompleteError
			if !errors.As(err, &ie) || !errors.Is(err, ErrIncomplete) || !strings.Contains(ie.Reason, c.why) {
				t.Fatalf("want INCOMPLETE %q, got %v", c.why, err)
			}
		})
	}
}

// TestCutStartFails: a log must start at seq 1 or at a signed hand-over.
func TestCutStartFails(t *testing.T) {
	a := newAuditToken(t)
	path := a.signedLog(t, 5)
	orig := lines(t, path)
	for _, cut := range []int{1, 3} {
		p := filepath.Join(t.TempDir(), "audit.log")
		writeLines(t, p, orig[cut:])
		_, err := a.verify(t, VerifyOptions{}, p)
		var be *BrokenError
		if !errors.As(err, &be) || be.Line != 1 || !strings.Contains(be.Reason, "neither at seq 1 nor at a signed hand-over") {
			t.Fatalf("cut %d: got %v", cut, err)
		}
	}
}

// TestResumeRefused: Open refuses a file that does not match the token's
// last checkpoint, unless told to start a new log after the break.
func TestResumeRefused(t *testing.T) {
	a := newAuditToken(t)
	path := a.signedLog(t, 5)
	// The untouched log resumes, and the result still verifies.
	l := openT(t, Options{File: path, Checkpoint: a.options()})
	writeN(t, l, 2)
	l.Close()
	if _, err := a.verify(t, VerifyOptions{}, path); err != nil {
		t.Fatalf("after a resume: %v", err)
	}
	orig := lines(t, path)
	cases := []struct {
		name  string
		lines []string
		why   string
	}{
		{"tail cut", orig[:len(orig)-2], "lines were cut from its end"},
		{"final checkpoint cut", orig[:len(orig)-1], "lines were cut from its end"},
		{"rewritten with recomputed hashes", rechain(t, orig, func(e *Event) {
			if e.Key != "" {
				e.Key = "forged"
			}
		}), "not the line the token's last checkpoint recorded"},
		{"last checkpoint edited", append(append([]string{}, orig[:len(orig)-1]...), rehash(t, strings.Replace(orig[len(orig)-1], `"time":"2`, `"time":"1`, 1))), "edited"},
		{"written without checkpoints", legacyLog(t), "no signed line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "audit.log")
			writeLines(t, p, c.lines)
			_, err := Open(Options{File: p, Checkpoint: a.options()})
			if !errors.Is(err, ErrResume) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("want ErrResume %q, got %v", c.why, err)
			}
			o := a.options()
			o.StartAfterBreak = true
			l := openT(t, Options{File: p, Checkpoint: o})
			writeN(t, l, 1)
			l.Close()
			res, err := a.verify(t, VerifyOptions{}, p)
			if err != nil || res.FirstSeq != 1 || !strings.Contains(res.Break, c.why) || !strings.Contains(res.Break, "audit.log.broken-") {
				t.Fatalf("new log after the break: %+v, %v", res, err)
			}
			if m, _ := filepath.Glob(p + ".broken-*"); len(m) != 1 {
				t.Fatalf("refused file not moved aside: %v", m)
			}
		})
	}
}

// legacyLog is a log written without checkpoints (before audit.key).
func legacyLog(t *testing.T) []string {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openT(t, Options{File: path})
	writeN(t, l, 3)
	l.Close()
	return lines(t, path)
}

// TestSignedRotation: a full file ends in a checkpoint and the next one
// starts with a signed hand-over, so each verifies alone and all together.
func TestSignedRotation(t *testing.T) {
	a := newAuditToken(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	o := a.options()
	l := openT(t, Options{File: path, MaxBytes: 2000, Checkpoint: o})
	testtool.Eventually(t, 10*time.Second, func() bool {
		writeN(t, l, 3)
		return lastRotated(path) >= 2
	}, "two rotations")
	l.Close()
	files := []string{rotatedName(path, 1), rotatedName(path, 2), path}
	if _, err := a.verify(t, VerifyOptions{}, files...); err != nil {
		t.Fatalf("all files: %v", err)
	}
	for _, f := range files {
		if _, err := a.verify(t, VerifyOptions{}, f); err != nil {
			t.Errorf("%s alone: %v", f, err)
		}
	}
	// The last file restarts.
	l = openT(t, Options{File: path, MaxBytes: 2000, Checkpoint: a.options()})
	l.Close()
}

// TestCheckpointInterval: checkpoints come at the interval, without calls
// waiting for them.
func TestCheckpointInterval(t *testing.T) {
	a := newAuditToken(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	o := a.options()
	o.Interval = 20 * time.Millisecond
	l := openT(t, Options{File: path, Checkpoint: o})
	writeN(t, l, 2)
	testtool.Eventually(t, 10*time.Second, func() bool {
		return strings.Count(strings.Join(lines(t, path), ""), `"phase":"checkpoint"`) >= 2
	}, "two periodic checkpoints")
	writeN(t, l, 2)
	l.Close()
	if res, err := a.verify(t, VerifyOptions{}, path); err != nil || res.Checkpoints < 4 {
		t.Fatalf("VerifySigned = %+v, %v", res, err)
	}
}

// FuzzVerifySigned: any bytes give a result or an error, never a panic.
func FuzzVerifySigned(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add([]byte(`{"time":"2026-05-01T10:00:00Z","seq":1,"phase":"genesis","log":"ab","cp_hash":"` + Genesis + `","key_id":"00","sig":"AA==","prev":"` + Genesis + `","hash":"` + Genesis + `"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = VerifySigned(VerifyOptions{Keys: []crypto.PublicKey{&k.PublicKey}}, File{Name: "f", R: bytes.NewReader(b)})
	})
}

// FuzzReadBackward: readBackward gives the lines of a file, last first.
func FuzzReadBackward(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc\n"))
	f.Add(bytes.Repeat([]byte("0123456789\n"), 20000))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[len(b)-1] != '\n' || len(b) > 1<<20 {
			return
		}
		p := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		var got []string
		err = readBackward(fh, int64(len(b)), func(line []byte) (bool, error) {
			got = append(got, string(line))
			return false, nil
		})
		want := strings.Split(string(b[:len(b)-1]), "\n")
		if err != nil {
			for _, w := range want {
				if len(w) > MaxLine {
					return
				}
			}
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range want {
			if got[len(got)-1-i] != want[i] {
				t.Fatalf("line %d: %q, want %q", i, got[len(got)-1-i], want[i])
			}
		}
	})
}
