package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"
)

var allCiphers = []Cipher{AES256CBC, AES128CBC, AES256GCM, AES128GCM}
var allTransports = []KeyTransport{RSAOAEP, RSAOAEPSHA1, RSAPKCS1}

func TestRoundTrip(t *testing.T) {
	k1, k2 := rsaKey(t, 2048, 0), rsaKey(t, 2048, 1)
	r1 := recipient{softKey{k1}, selfSigned(t, k1, "one", certOpts{})}
	r2 := recipient{softKey{k2}, selfSigned(t, k2, "two", certOpts{})}
	sizes := []int{1, 15, 16, 17, 1000}
	for _, c := range allCiphers {
		for _, kt := range allTransports {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/%s/%d", c, kt, n), func(t *testing.T) {
					data := make([]byte, n)
					rand.Read(data)
					der, err := Encrypt(data, []*x509.Certificate{r1.cert, r2.cert}, Options{Cipher: c, KeyTransport: kt})
					if err != nil {
						t.Fatal(err)
					}
					m, err := Parse(der, Limits{})
					if err != nil {
						t.Fatal(err)
					}
					if m.Authenticated != c.gcm() || m.Cipher != c || len(m.Recipients) != 2 {
						t.Fatalf("parsed %+v", m)
					}
					for _, r := range []recipient{r1, r2} {
						res, err := Decrypt(context.Background(), der, finderOf(r), DecryptOptions{})
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(res.Plaintext, data) || res.KeyTransport != kt || res.Cipher != c {
							t.Fatalf("got %d bytes, %s %s", len(res.Plaintext), res.KeyTransport, res.Cipher)
						}
					}
				})
			}
		}
	}
}

func TestDefaults(t *testing.T) {
	k := rsaKey(t, 2048, 0)
	cert := selfSigned(t, k, "r", certOpts{})
	der, err := Encrypt([]byte("x"), []*x509.Certificate{cert}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(der, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// AES-256-GCM (AuthEnvelopedData, version 0) by default: CBC content
	// is unauthenticated (docs/security.md, "Decryption without an oracle").
	if m.Cipher != AES256GCM || !m.Authenticated || m.Recipients[0].KeyTransport != RSAOAEP || m.Version != 0 {
		t.Fatalf("defaults: %s %v %s v%d", m.Cipher, m.Authenticated, m.Recipients[0].KeyTransport, m.Version)
	}

	// Streams cannot be GCM (ErrStreamGCM), so their default stays CBC.
	var out bytes.Buffer
	ew, err := NewEncryptWriter(&out, []*x509.Certificate{cert}, Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ew.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := Parse(out.Bytes(), Limits{}); err != nil || m.Cipher != AES256CBC || m.Authenticated {
		t.Fatalf("stream default: %v %v", m, err)
	}
}

// TestNoOracle: every way a message for our key can fail to decrypt gives
// the same error, with nothing added.
func TestNoOracle(t *testing.T) {
	k := rsaKey(t, 2048, 0)
	other := rsaKey(t, 2048, 1)
	cert := selfSigned(t, k, "r", certOpts{})
	data := bytes.Repeat([]byte("filing "), 100)
	for _, c := range allCiphers {
		for _, kt := range allTransports {
			der, err := Encrypt(data, []*x509.Certificate{cert}, Options{Cipher: c, KeyTransport: kt})
			if err != nil {
				t.Fatal(err)
			}
			type mutation struct {
				name string
				key  Key
				mut  func(m *Message)
			}
			muts := []mutation{
				{"wrong key", softKey{other}, nil},
				{"encrypted key bit", softKey{k}, func(m *Message) { m.Recipients[0].EncryptedKey[100] ^= 1 }},
				{"encrypted key zero", softKey{k}, func(m *Message) { clear(m.Recipients[0].EncryptedKey) }},
				{"encrypted key short", softKey{k}, func(m *Message) { m.Recipients[0].EncryptedKey = m.Recipients[0].EncryptedKey[1:] }},
				{"encrypted key above modulus", softKey{k}, func(m *Message) {
					for i := range m.Recipients[0].EncryptedKey {
						m.Recipients[0].EncryptedKey[i] = 0xff
					}
				}},
				{"last ciphertext byte", softKey{k}, func(m *Message) { m.EncryptedContent[len(m.EncryptedContent)-1] ^= 0x40 }},
				{"first ciphertext byte", softKey{k}, func(m *Message) { m.EncryptedContent[0] ^= 1 }},
				{"truncated ciphertext", softKey{k}, func(m *Message) { m.EncryptedContent = m.EncryptedContent[:len(m.EncryptedContent)-3] }},
				{"iv", softKey{k}, func(m *Message) { m.IV[len(m.IV)-1] ^= 1 }},
			}
			if c.gcm() {
				muts = append(muts, mutation{"tag", softKey{k}, func(m *Message) { m.MAC[0] ^= 1 }})
			} else {
				// A content key of the wrong length: re-encrypt a 16-byte
				// key for an AES-256 message.
				muts = append(muts, mutation{"content key length", softKey{k}, func(m *Message) {
					one, _ := Encrypt([]byte("x"), []*x509.Certificate{cert}, Options{Cipher: AES128CBC, KeyTransport: kt})
					mm, _ := Parse(one, Limits{})
					if m.Cipher == AES128CBC {
						one, _ = Encrypt([]byte("x"), []*x509.Certificate{cert}, Options{Cipher: AES256CBC, KeyTransport: kt})
						mm, _ = Parse(one, Limits{})
					}
					m.Recipients[0].EncryptedKey = mm.Recipients[0].EncryptedKey
				}})
			}
			for _, mu := range muts {
				t.Run(fmt.Sprintf("%s/%s/%s", c, kt, mu.name), func(t *testing.T) {
					m, _ := Parse(bytes.Clone(der), Limits{})
					if mu.mut != nil {
						mu.mut(m)
					}
					res, err := m.Decrypt(context.Background(), finderOf(recipient{mu.key, cert}), DecryptOptions{})
					if !c.gcm() && err == nil {
						// CBC is unauthenticated: a flipped IV or first
						// block, or a random implicit-rejection key whose
						// last block happens to pad well (1 in 256),
						// decrypts to garbage. It must never be the data.
						if bytes.Equal(res.Plaintext, data) {
							t.Fatalf("%s: decrypted to the original data", mu.name)
						}
						return
					}
					wantDecryptErr(t, err, mu.name)
				})
			}
		}
	}
}

func TestBadCBCPaddingIsDecryptError(t *testing.T) {
	// Valid key, content whose last block decrypts to a bad padding: made
	// by dropping the padding block of a body of zeros (pad byte 0).
	k := rsaKey(t, 2048, 0)
	cert := selfSigned(t, k, "r", certOpts{})
	der, err := Encrypt(make([]byte, 32), []*x509.Certificate{cert}, Options{Cipher: AES256CBC})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Parse(der, Limits{})
	m.EncryptedContent = m.EncryptedContent[:32] // drop the padding block
	_, err = m.Decrypt(context.Background(), finderOf(recipient{softKey{k}, cert}), DecryptOptions{})
	wantDecryptErr(t, err, "padding")
	for _, tc := range []struct {
		last  []byte
		valid int
		n     int
	}{
		{[]byte{0x01}, 1, 15},
		{bytes.Repeat([]byte{16}, 16), 1, 0},
		{[]byte{0x00}, 0, 16},
		{[]byte{17}, 0, 16},
		{[]byte{3, 2, 3}, 0, 16},
		{[]byte{2, 2}, 1, 14},
	} {
		blk := make([]byte, 16)
		copy(blk[16-len(tc.last):], tc.last)
		n, ok := unpadPKCS7(blk)
		if ok != tc.valid || (ok == 1 && n != tc.n) {
			t.Errorf("padding %x: got %d,%d want %d,%d", tc.last, n, ok, tc.n, tc.valid)
		}
	}
}

func TestRecipientChecks(t *testing.T) {
	k := rsaKey(t, 2048, 0)
	small := rsaKey(t, 1024, 0)
	now := time.Now()
	tests := []struct {
		name string
		cert *x509.Certificate
		want error
	}{
		{"signing only", selfSigned(t, k, "s", certOpts{usage: x509.KeyUsageDigitalSignature}), ErrKeyUsage},
		{"RSA-1024", selfSigned(t, small, "w", certOpts{}), ErrWeakKey},
		{"expired", selfSigned(t, k, "e", certOpts{notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour)}), ErrExpired},
		{"not yet valid", selfSigned(t, k, "n", certOpts{notBefore: now.Add(time.Hour), notAfter: now.Add(48 * time.Hour)}), ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encrypt([]byte("x"), []*x509.Certificate{tc.cert}, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			der, err := Encrypt([]byte("x"), []*x509.Certificate{tc.cert}, Options{AllowLegacy: true})
			if err != nil {
				t.Fatalf("AllowLegacy: %v", err)
			}
			key := softKey{k}
			if errors.Is(tc.want, ErrWeakKey) {
				key = softKey{small}
			}
			res, err := Decrypt(context.Background(), der, finderOf(recipient{key, tc.cert}), DecryptOptions{})
			if err != nil || string(res.Plaintext) != "x" {
				t.Fatalf("legacy decrypt: %v", err)
			}
		})
	}
}

func TestEncryptLimits(t *testing.T) {
	k := rsaKey(t, 2048, 0)
	cert := selfSigned(t, k, "r", certOpts{})
	three := []*x509.Certificate{cert, cert, cert}
	if _, err := Encrypt([]byte("x"), three, Options{Limits: Limits{MaxRecipients: 2}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("recipients: %v", err)
	}
	if _, err := Encrypt(make([]byte, 101), []*x509.Certificate{cert}, Options{Limits: Limits{MaxBody: 100}}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("body: %v", err)
	}
	if _, err := Encrypt(nil, []*x509.Certificate{cert}, Options{}); !errors.Is(err, ErrEmptyContent) {
		t.Errorf("empty: %v", err)
	}
	if _, err := Encrypt([]byte("x"), nil, Options{}); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("none: %v", err)
	}
	if _, err := Encrypt([]byte("x"), []*x509.Certificate{cert}, Options{Cipher: "des"}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("cipher: %v", err)
	}
	der, err := Encrypt([]byte("x"), three, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(der, Limits{MaxRecipients: 2}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("parse recipients: %v", err)
	}
	if _, err := Parse(der, Limits{MaxBytes: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("parse bytes: %v", err)
	}
}

func TestNoRecipient(t *testing.T) {
	k, other := rsaKey(t, 2048, 0), rsaKey(t, 2048, 1)
	cert := selfSigned(t, k, "r", certOpts{})
	der, _ := Encrypt([]byte("x"), []*x509.Certificate{cert}, Options{})
	_, err := Decrypt(context.Background(), der, finderOf(recipient{softKey{other}, selfSigned(t, other, "o", certOpts{})}), DecryptOptions{})
	if !errors.Is(err, ErrNoRecipient) {
		t.Fatalf("got %v", err)
	}
	boom := errors.New("token gone")
	_, err = Decrypt(context.Background(), der, func(context.Context, RecipientID) (Key, error) { return nil, boom }, DecryptOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("finder error: %v", err)
	}
}

func TestSubjectKeyIDRecipient(t *testing.T) {
	// pecet writes issuerAndSerialNumber; other producers write a subject
	// key identifier (version 2 ktri). Build one by hand.
	k := rsaKey(t, 2048, 0)
	cert := selfSigned(t, k, "r", certOpts{ski: []byte{1, 2, 3, 4}})
	der, _ := Encrypt([]byte("ski"), []*x509.Certificate{cert}, Options{})
	m, _ := Parse(der, Limits{})
	id := RecipientID{SubjectKeyID: []byte{1, 2, 3, 4}}
	if !id.Matches(cert) || (RecipientID{SubjectKeyID: []byte{9}}).Matches(cert) {
		t.Fatal("subject key identifier matching")
	}
	m.Recipients[0].ID = id
	res, err := m.Decrypt(context.Background(), finderOf(recipient{softKey{k}, cert}), DecryptOptions{})
	if err != nil || string(res.Plaintext) != "ski" {
		t.Fatal(err)
	}
}

func TestParseCipherAndTransport(t *testing.T) {
	for in, want := range map[string]Cipher{"aes256-cbc": AES256CBC, "AES-256-GCM": AES256GCM, "aes128cbc": AES128CBC, "aes128-gcm": AES128GCM} {
		if got, err := ParseCipher(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseCipher("des-ede3"); !errors.Is(err, ErrUnsupported) {
		t.Error(err)
	}
	for in, want := range map[string]KeyTransport{"rsa-oaep": RSAOAEP, "rsa-oaep-sha256": RSAOAEP, "rsa-oaep-sha1": RSAOAEPSHA1, "rsa-pkcs1": RSAPKCS1} {
		if got, err := ParseKeyTransport(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseKeyTransport("rsa-oaep-md5"); !errors.Is(err, ErrUnsupported) {
		t.Error(err)
	}
}
