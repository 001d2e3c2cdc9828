package envelope

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/pecet-hsm/pecet/softhsm"
)

// outcome is what a caller sees of one decryption: the error text, or the
// hash of the plaintext it got.
type outcome struct {
	err string
	pt  [sha256.Size]byte
}

func (o outcome) ok() bool { return o.err == "" }

func outcomeOf(pt []byte, err error) outcome {
	if err != nil {
		return outcome{err: err.Error()}
	}
	return outcome{pt: sha256.Sum256(pt)}
}

// rejectionCase is a message whose RSA block does not carry its content
// key: either the block is bad (padding, length) and implicit rejection
// takes over, or it is well formed and carries some other key.
type rejectionCase struct {
	name string
	der  []byte
	// content is what the message's real content key would have opened.
	content []byte
}

// rejectionCases makes, for cipher c and key transport kt, a message with
// a random encrypted key (bad padding, overwhelmingly), one whose block is
// well formed but carries a key of the wrong length, and one whose block
// is well formed and carries a wrong key of the right length.
func rejectionCases(t testing.TB, cert *x509.Certificate, c Cipher, kt KeyTransport) []rejectionCase {
	t.Helper()
	pub := cert.PublicKey.(*rsa.PublicKey)
	wrap := func(key []byte) []byte {
		var ek []byte
		var err error
		switch kt {
		case RSAPKCS1:
			ek, err = rsa.EncryptPKCS1v15(rand.Reader, pub, key)
		case RSAOAEP:
			ek, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, key, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		return ek
	}
	random, err := rand.Int(rand.Reader, pub.N)
	if err != nil {
		t.Fatal(err)
	}
	blocks := []struct {
		name string
		ek   []byte
	}{
		{"bad block", random.FillBytes(make([]byte, pub.Size()))},
		{"well-formed, short key", wrap(make([]byte, c.keyLen()/2))},
		{"well-formed, wrong key", wrap(bytes.Repeat([]byte{0x5a}, c.keyLen()))},
	}
	var out []rejectionCase
	for _, b := range blocks {
		content := make([]byte, 100)
		rand.Read(content)
		der, err := Encrypt(content, []*x509.Certificate{cert}, Options{Cipher: c, KeyTransport: kt})
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(der, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		// The encrypted key is a k-byte OCTET STRING in the DER: swap its
		// value for the case's block, same length.
		i := bytes.Index(der, m.Recipients[0].EncryptedKey)
		if i < 0 || len(b.ek) != len(m.Recipients[0].EncryptedKey) {
			t.Fatal("encrypted key not found in the message")
		}
		copy(der[i:], b.ek)
		out = append(out, rejectionCase{name: fmt.Sprintf("%s/%s/%s", c, kt, b.name), der: der, content: content})
	}
	return out
}

// TestImplicitRejectionRepeatable decrypts the same rejected messages many
// times on a SoftHSM key, unary and streamed, and wants the same outcome
// every time, and that outcome never the message's content. With a fresh
// random key per rejection, a CBC message with a bad block passed the CBC
// padding check about once in 256 repeats while a well-formed wrong block
// answered the same every time: repetition told them apart, a padding
// oracle (docs/security.md, "Decryption without an oracle"). A GCM message
// never opens under a wrong key; a CBC message opens under a wrong key for
// about 1 in 256 messages whatever kind of wrong key it is, always to the
// same garbage, so the test asserts that such a success repeats exactly.
func TestImplicitRejectionRepeatable(t *testing.T) {
	s := softhsm.NewToken(t)
	d, cert := importKey(t, s, "gw", rsaKey(t, 2048, 0))
	find := finderOf(recipient{d, cert})
	ctx := context.Background()
	const repeats, streamRepeats = 400, 100

	var cases []rejectionCase
	for _, c := range []Cipher{AES256CBC, AES128CBC, AES256GCM} {
		for _, kt := range []KeyTransport{RSAPKCS1, RSAOAEP} {
			cases = append(cases, rejectionCases(t, cert, c, kt)...)
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gcm := bytes.Contains([]byte(tc.name), []byte("gcm"))
			check := func(how string, n int, decrypt func() outcome) {
				first := decrypt()
				if gcm && first.ok() {
					t.Fatalf("%s: a GCM message opened under a wrong content key", how)
				}
				if first.ok() && first.pt == sha256.Sum256(tc.content) {
					t.Fatalf("%s: opened to the content without its key", how)
				}
				if !first.ok() && first.err != ErrDecrypt.Error() {
					t.Fatalf("%s: error %q, want exactly %q", how, first.err, ErrDecrypt)
				}
				for i := 1; i < n; i++ {
					if o := decrypt(); o != first {
						t.Fatalf("%s: repeat %d gave %+v, the first %+v: the outcome depends on chance, not on the message", how, i, o, first)
					}
				}
			}
			check("Decrypt", repeats, func() outcome {
				res, err := Decrypt(ctx, tc.der, find, DecryptOptions{})
				if res != nil {
					return outcomeOf(res.Plaintext, err)
				}
				return outcomeOf(nil, err)
			})
			if gcm {
				return // not streamed (ErrStreamGCM)
			}
			check("DecryptReader", streamRepeats, func() outcome {
				r, err := NewDecryptReader(ctx, bytes.NewReader(tc.der), find, DecryptOptions{}, 0)
				if err != nil {
					return outcomeOf(nil, err)
				}
				pt, err := io.ReadAll(r)
				return outcomeOf(pt, err)
			})
		})
	}
}

// TestRejectionSecretBoundToKey: the synthetic key is the same for two
// handles on one key (two replicas on one token), differs between keys and
// between encrypted keys, and has the cipher's length.
func TestRejectionSecretBoundToKey(t *testing.T) {
	ctx := context.Background()
	k0, k1 := rsaKey(t, 2048, 0), rsaKey(t, 2048, 1)
	// A copy of k0 that shares no memory: another handle on the same key.
	k0b := &rsa.PrivateKey{PublicKey: k0.PublicKey, D: k0.D, Primes: k0.Primes}
	synth := func(k *rsa.PrivateKey, ek []byte, keyLen int) []byte {
		t.Helper()
		// Clear the cache so each call derives the secret on the key.
		rejectionSecrets.mu.Lock()
		rejectionSecrets.m = nil
		rejectionSecrets.mu.Unlock()
		s, err := rejectionSecret(ctx, softKey{k}, &k.PublicKey, false)
		if err != nil {
			t.Fatal(err)
		}
		return syntheticKey(s, RSAPKCS1, ek, keyLen)
	}
	ek1, ek2 := bytes.Repeat([]byte{1}, 256), bytes.Repeat([]byte{2}, 256)
	tests := []struct {
		name string
		a, b []byte
		same bool
	}{
		{"same key, two handles", synth(k0, ek1, 32), synth(k0b, ek1, 32), true},
		{"other key", synth(k0, ek1, 32), synth(k1, ek1, 32), false},
		{"other encrypted key", synth(k0, ek1, 32), synth(k0, ek2, 32), false},
		{"other length", synth(k0, ek1, 32)[:16], synth(k0, ek1, 16), false},
	}
	for _, tc := range tests {
		if bytes.Equal(tc.a, tc.b) != tc.same {
			t.Errorf("%s: equal=%v, want %v", tc.name, !tc.same, tc.same)
		}
	}
	if n := len(synth(k0, ek1, 16)); n != 16 {
		t.Errorf("length %d, want 16", n)
	}

	// A token failure while deriving the secret is an error, not a key.
	_, err := rejectionSecret(ctx, failingKey{softKey{k1}}, &rsaKey(t, 2048, 2).PublicKey, false)
	if !errors.Is(err, errTokenGone) {
		t.Fatalf("failing token: %v, want errTokenGone", err)
	}
}

var errTokenGone = errors.New("token gone")

// failingKey is a Key whose token fails every operation.
type failingKey struct{ softKey }

func (failingKey) DecryptRaw(context.Context, []byte) ([]byte, error) { return nil, errTokenGone }

// noRawKey decrypts OAEP itself but refuses raw RSA, like an HSM whose
// policy forbids CKM_RSA_X_509 (run with token.oaep: token).
type noRawKey struct{ softKey }

func (noRawKey) DecryptRaw(context.Context, []byte) ([]byte, error) { return nil, errTokenGone }
func (noRawKey) SupportsOAEP(crypto.Hash) bool                      { return true }
func (k noRawKey) DecryptContext(_ context.Context, rnd io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return k.k.Decrypt(rnd, msg, opts)
}

// TestRejectionWithoutRawRSA: with OAEPToken a token without raw RSA
// still opens good messages and rejects a bad one the same way every time
// (a per-process secret); the other modes need raw RSA and say so.
func TestRejectionWithoutRawRSA(t *testing.T) {
	ctx := context.Background()
	k := rsaKey(t, 2048, 3)
	cert := selfSigned(t, k, "noraw", certOpts{})
	find := finderOf(recipient{noRawKey{softKey{k}}, cert})
	good, err := Encrypt([]byte("hello"), []*x509.Certificate{cert}, Options{Cipher: AES256CBC})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []OAEPMode{OAEPAuto, OAEPRaw} {
		if _, err := Decrypt(ctx, good, find, DecryptOptions{OAEP: mode}); !errors.Is(err, errTokenGone) {
			t.Fatalf("%s: %v, want the token's error", mode, err)
		}
	}
	res, err := Decrypt(ctx, good, find, DecryptOptions{OAEP: OAEPToken})
	if err != nil || string(res.Plaintext) != "hello" {
		t.Fatalf("token mode: %v", err)
	}
	for _, tc := range rejectionCases(t, cert, AES256CBC, RSAOAEP) {
		var first outcome
		for i := range 300 {
			res, err := Decrypt(ctx, tc.der, find, DecryptOptions{OAEP: OAEPToken})
			o := outcomeOf(nil, err)
			if res != nil {
				o = outcomeOf(res.Plaintext, err)
			}
			if i == 0 {
				first = o
			} else if o != first {
				t.Fatalf("%s: repeat %d differs", tc.name, i)
			}
		}
	}
}
