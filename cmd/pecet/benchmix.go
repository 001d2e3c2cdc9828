package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"sync"
	"time"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/client"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/perf/loadgen"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/signer"
	"github.com/pecet-hsm/pecet/tsa"
)

// benchCall is one call of an operation; w is the worker's index.
type benchCall func(ctx context.Context, cc *client.Conn, w int) error

// callNote is what a call tells the record beyond its outcome: which
// operation it was and the hex SHA-256 that pecetd's audit log writes as
// input_sha256 for it (empty for calls that are not audited).
type callNote struct{ Op, Input string }

// mixOps is the fixed order each worker of --op mix goes through: every
// operation once per round, so the proportion is 1:1:1:1:1.
var mixOps = []string{"sign", "verify", "encrypt", "decrypt", "timestamp"}

// mixWorker is one worker's state: the verify after a sign checks that
// signature, the decrypt after an encrypt opens that envelope.
type mixWorker struct {
	n      int
	signed *signedData // the last signature, not yet verified
	sealed *sealedData // the last envelope, not yet decrypted
}

type signedData struct{ data, sig []byte }
type sealedData struct{ data, env []byte }

// prepareMix is --op mix: sign, verify, encrypt, decrypt and timestamp in
// turn, each over fresh data, each answer checked here. A signature must
// verify over the data sent (checked locally, signature and digest; the
// chain is pecetd's verify's business) and then be judged VALID by pecetd
// over that data and INVALID over altered data (in turn); a decryption
// must return exactly the bytes encrypted (by pecetd's Encrypt in the
// step before, or locally when that failed); a time-stamp token must be
// granted and carry the digest and nonce sent, under a valid signature.
// Anything else is a wrong answer (loadgen.ErrWrong), never an error.
// Decrypt runs on o.second (the gateway role).
func prepareMix(ctx context.Context, cc *client.Conn, _ string, body []byte, o benchOpts) (benchCall, error) {
	const signKey, decryptKey = "client-sign", "gateway-decrypt"
	cert, err := primaryCert(ctx, cc, decryptKey)
	if err != nil {
		return nil, err
	}
	fresh := func() []byte {
		d := bytes.Clone(body)
		_, _ = rand.Read(d[:min(len(d), 16)])
		return d
	}
	// The signature a verify checks when its worker's sign failed.
	spare := fresh()
	t0 := time.Now()
	resp, err := cc.Sign.Sign(ctx, &pecetv1.SignRequest{Key: signKey, Input: &pecetv1.SignRequest_Data{Data: spare}})
	o.record("setup", 0, callNote{"sign", hashHex(spare)}, t0, time.Now(), err)
	if err != nil {
		return nil, fmt.Errorf("making a signature to verify: %w", err)
	}
	fallback := &signedData{spare, resp.GetSignature()}
	encOpts := envelope.Options{Cipher: envelope.Cipher(o.cipher), KeyTransport: envelope.KeyTransport(o.transport)}
	workers := make([]mixWorker, o.conc)

	sign := func(ctx context.Context, cc *client.Conn, mw *mixWorker, note *callNote) error {
		data := fresh()
		note.Input = hashHex(data)
		r, err := cc.Sign.Sign(ctx, &pecetv1.SignRequest{Key: signKey, Input: &pecetv1.SignRequest_Data{Data: data}})
		if err != nil {
			return err
		}
		v, err := signer.Verify(r.GetSignature(), signer.VerifyOptions{Content: data})
		if err != nil || v.Status == policy.Invalid {
			return loadgen.Wrong("signature over the data sent: %v %v %v", err, v.Status, v.Reasons)
		}
		mw.signed = &signedData{data, r.GetSignature()}
		return nil
	}
	verify := func(ctx context.Context, cc *client.Conn, mw *mixWorker, _ *callNote) error {
		s := mw.signed
		if s == nil {
			s = fallback
		}
		mw.signed = nil
		content, want := s.data, pecetv1.Verdict_VALID
		if mw.n/len(mixOps)%2 == 1 {
			content, want = append(bytes.Clone(s.data), '!'), pecetv1.Verdict_INVALID
		}
		r, err := cc.Sign.Verify(ctx, &pecetv1.VerifyRequest{Signature: s.sig, Detached: &pecetv1.VerifyRequest_Content{Content: content}})
		if err != nil {
			return err
		}
		if got := r.GetVerdict().GetStatus(); got != want {
			return loadgen.Wrong("verdict %v, want %v", got, want)
		}
		return nil
	}
	encrypt := func(ctx context.Context, cc *client.Conn, mw *mixWorker, _ *callNote) error {
		data := fresh()
		r, err := cc.Envelope.Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{decryptKey},
			Cipher: cipherNames[o.cipher], KeyTransport: transportNames[o.transport]})
		if err != nil {
			return err
		}
		mw.sealed = &sealedData{data, r.GetEnveloped()}
		return nil
	}
	decrypt := func(ctx context.Context, w int, mw *mixWorker, note *callNote) error {
		s := mw.sealed
		mw.sealed = nil
		if s == nil {
			data := fresh()
			env, err := envelope.Encrypt(data, []*x509.Certificate{cert}, encOpts)
			if err != nil {
				return fmt.Errorf("encrypting here: %w", err)
			}
			s = &sealedData{data, env}
		}
		note.Input = hashHex(s.env)
		r, err := o.second[w%len(o.second)].Envelope.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: s.env, Key: decryptKey})
		if err != nil {
			return err
		}
		if !bytes.Equal(r.GetData(), s.data) {
			return loadgen.Wrong("decryption returned %d bytes other than the %d encrypted", len(r.GetData()), len(s.data))
		}
		return nil
	}
	timestamp := func(ctx context.Context, cc *client.Conn, _ *mixWorker, note *callNote) error {
		digest := sha256.Sum256(fresh())
		nonce := make([]byte, 8)
		_, _ = rand.Read(nonce)
		nonce[0] |= 1 // a positive INTEGER without a leading zero octet
		nonce[0] &= 0x7f
		note.Input = hashHex(digest[:])
		r, err := cc.Timestamp.Timestamp(ctx, &pecetv1.TimestampRequest{Digest: digest[:], Nonce: nonce, CertReq: true})
		if err != nil {
			return err
		}
		switch {
		case r.GetStatus() == pecetv1.TimestampResponse_REJECTION && r.GetFailureInfo() == tsa.FailSystemFailure.String():
			// The TSA's own word for "the token failed": an error, not
			// a wrong answer (docs/tsa.md).
			return &loadgen.Refused{Code: r.GetFailureInfo(), Msg: r.GetStatusText()}
		case r.GetStatus() != pecetv1.TimestampResponse_GRANTED:
			return loadgen.Wrong("time-stamp not granted: %v %s", r.GetStatus(), r.GetFailureInfo())
		}
		info, v, err := tsa.Verify(r.GetToken(), tsa.VerifyOptions{Digest: digest[:], DigestHash: crypto.SHA256, Nonce: new(big.Int).SetBytes(nonce)})
		if err != nil || v.Status == policy.Invalid || !bytes.Equal(info.Digest, digest[:]) {
			return loadgen.Wrong("time-stamp token for the digest sent: %v %v %v", err, v.Status, v.Reasons)
		}
		return nil
	}
	return func(ctx context.Context, cc *client.Conn, w int) error {
		mw := &workers[w]
		k := mixOps[mw.n%len(mixOps)]
		note := &o.notes[w]
		*note = callNote{Op: k}
		var err error
		switch k {
		case "sign":
			err = sign(ctx, cc, mw, note)
		case "verify":
			err = verify(ctx, cc, mw, note)
		case "encrypt":
			err = encrypt(ctx, cc, mw, note)
		case "decrypt":
			err = decrypt(ctx, w, mw, note)
		case "timestamp":
			err = timestamp(ctx, cc, mw, note)
		}
		mw.n++
		return err
	}, nil
}

// primaryCert reads the certificate of a key's primary version (GetKey).
func primaryCert(ctx context.Context, cc *client.Conn, key string) (*x509.Certificate, error) {
	k, err := cc.Keys.GetKey(ctx, &pecetv1.GetKeyRequest{Alias: key})
	if err != nil {
		return nil, fmt.Errorf("reading the key's certificate: %w", err)
	}
	for _, v := range k.GetVersions() {
		if v.GetPrimary() && len(v.GetCertificateChain()) > 0 {
			cert, err := x509.ParseCertificate(v.GetCertificateChain()[0])
			if err != nil {
				return nil, fmt.Errorf("key %s: primary certificate: %w", key, err)
			}
			return cert, nil
		}
	}
	return nil, fmt.Errorf("key %s has no primary version with a certificate", key)
}

// hashHex is the audit log's input_sha256 of one input.
func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// benchRecord is one line of --record: one call, when it ran, how it
// ended. Times are wall-clock (RFC 3339 with nanoseconds) so that they can
// be set beside pecetd's fault log and audit log on the same machine.
type benchRecord struct {
	Phase string    `json:"phase,omitempty"` // "setup" for calls before the load
	W     int       `json:"w"`
	Op    string    `json:"op"`
	Input string    `json:"input_sha256,omitempty"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Code  string    `json:"code"`
	Wrong bool      `json:"wrong,omitempty"`
	// Detail says what was wrong (never data: sizes, verdicts, codes).
	Detail string `json:"detail,omitempty"`
}

// recorder writes benchRecords as JSON lines; a nil recorder drops them.
type recorder struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error
}

func newRecorder(w io.Writer) *recorder { return &recorder{enc: json.NewEncoder(w)} }

func (r *recorder) add(phase string, w int, n callNote, start, end time.Time, err error) {
	if r == nil {
		return
	}
	rec := benchRecord{Phase: phase, W: w, Op: n.Op, Input: n.Input, Start: start, End: end, Code: loadgen.Code(err)}
	if isWrong(err) {
		rec.Wrong, rec.Code, rec.Detail = true, "OK", err.Error()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.enc.Encode(rec); e != nil && r.err == nil {
		r.err = e
		fmt.Fprintf(os.Stderr, "pecet bench --record: %v\n", e)
	}
}
