package envelope

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/softhsm"
)

// OpenSSL 3 is the interoperability peer both ways: what we write it must
// decrypt, what it writes (DER and streamed BER) we must decrypt, for every
// cipher and key transport, with one and with two recipients.

type opensslPeer struct {
	key             *rsa.PrivateKey
	cert            *x509.Certificate
	certPEM, keyPEM string
}

func newPeer(t testing.TB, dir, name string, key *rsa.PrivateKey) opensslPeer {
	t.Helper()
	cert := selfSigned(t, key, name, certOpts{})
	p := opensslPeer{key: key, cert: cert, certPEM: filepath.Join(dir, name+".pem"), keyPEM: filepath.Join(dir, name+"-key.pem")}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	write(t, p.certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	write(t, p.keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	return p
}

func write(t testing.TB, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func opensslCipher(c Cipher) string {
	return "-" + map[Cipher]string{AES256CBC: "aes-256-cbc", AES128CBC: "aes-128-cbc", AES256GCM: "aes-256-gcm", AES128GCM: "aes-128-gcm"}[c]
}

func keyopts(kt KeyTransport) []string {
	switch kt {
	case RSAOAEP:
		return []string{"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"}
	case RSAOAEPSHA1:
		return []string{"-keyopt", "rsa_padding_mode:oaep"}
	}
	return nil
}

func TestOpenSSLInterop(t *testing.T) {
	testtool.OpenSSL(t)
	dir := t.TempDir()
	a := newPeer(t, dir, "a", rsaKey(t, 2048, 0))
	b := newPeer(t, dir, "b", rsaKey(t, 3072, 0))
	data := make([]byte, 4099)
	rand.Read(data)
	dataFile := write(t, filepath.Join(dir, "data"), data)
	for _, c := range allCiphers {
		for _, kt := range allTransports {
			for _, peers := range [][]opensslPeer{{a}, {a, b}} {
				name := fmt.Sprintf("%s/%s/%d", c, kt, len(peers))
				t.Run("ours-to-openssl/"+name, func(t *testing.T) {
					var certs []*x509.Certificate
					for _, p := range peers {
						certs = append(certs, p.cert)
					}
					der, err := Encrypt(data, certs, Options{Cipher: c, KeyTransport: kt})
					if err != nil {
						t.Fatal(err)
					}
					in := write(t, filepath.Join(t.TempDir(), "m.p7m"), der)
					for i, p := range peers {
						out := filepath.Join(t.TempDir(), fmt.Sprint("out", i))
						testtool.RunOpenSSL(t, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", in, "-recip", p.certPEM, "-inkey", p.keyPEM, "-out", out)
						if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
							t.Fatalf("openssl decrypted %d bytes, want %d", len(got), len(data))
						}
					}
				})
				for _, stream := range []bool{false, true} {
					if stream && len(peers) == 1 {
						continue
					}
					t.Run(fmt.Sprintf("openssl-to-ours/%s/stream=%v", name, stream), func(t *testing.T) {
						out := filepath.Join(t.TempDir(), "m.p7m")
						args := []string{"cms", "-encrypt", "-binary", "-outform", "DER", "-in", dataFile, "-out", out, opensslCipher(c)}
						if stream {
							args = append(args, "-stream")
						}
						for _, p := range peers {
							args = append(args, "-recip", p.certPEM)
							args = append(args, keyopts(kt)...)
						}
						testtool.RunOpenSSL(t, args...)
						der, _ := os.ReadFile(out)
						for _, p := range peers {
							res, err := Decrypt(context.Background(), der, finderOf(recipient{softKey{p.key}, p.cert}), DecryptOptions{})
							if err != nil {
								t.Fatal(err)
							}
							if !bytes.Equal(res.Plaintext, data) || res.KeyTransport != kt || res.Cipher != c {
								t.Fatalf("got %d bytes %s %s", len(res.Plaintext), res.KeyTransport, res.Cipher)
							}
						}
					})
				}
			}
		}
	}
}

// TestOpenSSLLargeBodyToken: a 20 MB binary body both ways, decrypted
// with a key on SoftHSM (OAEP-SHA256: raw RSA on the token, unpadded here).
func TestOpenSSLLargeBodyToken(t *testing.T) {
	testtool.OpenSSL(t)
	dir := t.TempDir()
	s := softhsm.NewToken(t)
	key := rsaKey(t, 2048, 0)
	d, cert := importKey(t, s, "big", key)
	p := newPeer(t, dir, "big", key)
	// The peer file holds the same key with another self-signed
	// certificate; use the token's certificate for both directions.
	write(t, p.certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	data := make([]byte, 20_000_000)
	rand.Read(data)
	dataFile := write(t, filepath.Join(dir, "data"), data)

	out := filepath.Join(dir, "in.p7m")
	testtool.RunOpenSSL(t, append([]string{"cms", "-encrypt", "-binary", "-outform", "DER", "-stream", "-in", dataFile, "-out", out, "-aes-256-gcm", "-recip", p.certPEM}, keyopts(RSAOAEP)...)...)
	der, _ := os.ReadFile(out)
	res, err := Decrypt(context.Background(), der, finderOf(recipient{d, cert}), DecryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Plaintext, data) {
		t.Fatal("large body differs")
	}

	der, err = Encrypt(data, []*x509.Certificate{cert}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := write(t, filepath.Join(dir, "ours.p7m"), der)
	got := filepath.Join(dir, "got")
	testtool.RunOpenSSL(t, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", in, "-recip", p.certPEM, "-inkey", p.keyPEM, "-out", got)
	if b, _ := os.ReadFile(got); !bytes.Equal(b, data) {
		t.Fatal("openssl: large body differs")
	}
}
