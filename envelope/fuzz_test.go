package envelope

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

func opensslCorpus(t testing.TB) []string {
	t.Helper()
	dir := testtool.Vectors(t, "openssl-fuzz", "cms")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("OpenSSL CMS corpus: %v", err)
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// fuzzKey is a recipient that accepts every RecipientInfo, so fuzzed input
// reaches the key unwrapping and the content decryption.
func fuzzFinder(t testing.TB) Finder {
	k := rsaKey(t, 2048, 0)
	return func(context.Context, RecipientID) (Key, error) { return softKey{k}, nil }
}

func ourSeeds(t testing.TB) [][]byte {
	k := rsaKey(t, 2048, 0)
	cert := selfSigned(t, k, "fuzz", certOpts{})
	var out [][]byte
	for _, c := range allCiphers {
		for _, kt := range allTransports {
			der, err := Encrypt([]byte("seed"), []*x509.Certificate{cert}, Options{Cipher: c, KeyTransport: kt})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, der)
		}
	}
	return out
}

// FuzzDecrypt parses and decrypts arbitrary input: it must never panic,
// only return documented errors, and stay within its limits. Seeds: our
// messages, testdata/fuzz/FuzzDecrypt (OpenSSL's streamed BER among them)
// and, when present, OpenSSL's CMS fuzzing corpus.
func FuzzDecrypt(f *testing.F) {
	for _, s := range ourSeeds(f) {
		f.Add(s)
	}
	for _, p := range opensslCorpus(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	find := fuzzFinder(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, Limits{})
		testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge, ErrUnsupported)
		if err != nil {
			return
		}
		if len(m.Recipients) > DefaultLimits().MaxRecipients {
			t.Fatalf("%d recipients", len(m.Recipients))
		}
		_, err = m.Decrypt(context.Background(), find, DecryptOptions{})
		testtool.CheckErr(t, err, ErrDecrypt, ErrNoRecipient, ErrUnsupported)
	})
}

// TestOpenSSLCorpus runs every file of OpenSSL's CMS fuzzing corpus
// through Parse and Decrypt: no panic, documented errors only, and each
// returns quickly (the bound is generous; it catches quadratic blow-ups,
// not speed).
func TestOpenSSLCorpus(t *testing.T) {
	files := opensslCorpus(t)
	if len(files) == 0 {
		t.Fatal("the OpenSSL CMS corpus is empty")
	}
	find := fuzzFinder(t)
	parsed := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		m, err := Parse(b, Limits{})
		testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge, ErrUnsupported)
		if err == nil {
			parsed++
			_, err = m.Decrypt(context.Background(), find, DecryptOptions{})
			testtool.CheckErr(t, err, ErrDecrypt, ErrNoRecipient, ErrUnsupported)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v", filepath.Base(p), d)
		}
	}
	t.Logf("%d corpus files, %d parsed as enveloped data", len(files), parsed)
}

// FuzzDecryptStream feeds arbitrary input to the incremental parser of
// DecryptReader, read in small pieces: it must never panic, return only
// documented errors, and what it decrypts the unary Decrypt must decrypt
// to the same bytes. Seeds: streamed and DER messages of ours and
// testdata/fuzz/FuzzDecryptStream (OpenSSL's -stream BER among them).
func FuzzDecryptStream(f *testing.F) {
	for _, s := range ourSeeds(f) {
		f.Add(s)
	}
	k := rsaKey(f, 2048, 0)
	cert := selfSigned(f, k, "fuzz", certOpts{})
	f.Add(streamEncrypt(f, []byte("streamed seed, three segments of 16"), []*x509.Certificate{cert}, Options{}, 16, 5))
	find := fuzzFinder(f)
	lim := Limits{MaxStream: 1 << 20, MaxSegments: 1 << 10, MaxHeader: 16 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		dr, err := NewDecryptReader(context.Background(), iotest.OneByteReader(bytes.NewReader(data)), find, DecryptOptions{Limits: lim}, 32)
		testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge, ErrUnsupported, ErrStreamGCM, ErrNoRecipient, ErrDecrypt)
		if err != nil {
			return
		}
		pt, err := io.ReadAll(dr)
		testtool.CheckErr(t, err, ErrMalformed, ErrTooLarge, ErrDecrypt)
		if err != nil {
			return
		}
		res, err := Decrypt(context.Background(), data, find, DecryptOptions{})
		if err != nil {
			t.Fatalf("the stream decrypted %d bytes, the unary Decrypt failed: %v", len(pt), err)
		}
		if !bytes.Equal(res.Plaintext, pt) {
			t.Fatal("stream and unary plaintexts differ")
		}
	})
}
