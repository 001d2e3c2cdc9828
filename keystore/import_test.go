package keystore_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestImportKey(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.ImportKey(ctx, "imported", keystore.PurposeDecrypt, key)
	if err != nil {
		t.Fatal(err)
	}
	if v.State != keystore.StatePendingCertificate || v.Algorithm != keystore.RSA2048 || !key.PublicKey.Equal(v.Public) {
		t.Fatalf("version %+v", v)
	}
	sens, extr, err := keystore.PrivateKeyAttrs(s, "imported", 1)
	if err != nil || !sens || extr {
		t.Fatalf("sensitive %v extractable %v: %v", sens, extr, err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imported"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	cert, _ := x509.ParseCertificate(der)
	if _, err := s.ImportCertificate(ctx, "imported", 1, []*x509.Certificate{cert}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Decrypter(ctx, "imported", 0)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, &key.PublicKey, []byte("on the token"), nil)
	if got, err := d.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1}); err != nil || string(got) != "on the token" {
		t.Fatalf("decrypt: %q %v", got, err)
	}
	if rate, err := d.Baseline(ctx, 1, 50*time.Millisecond); err != nil || rate <= 0 {
		t.Fatalf("baseline: %v %v", rate, err)
	}

	if _, err := s.ImportKey(ctx, "imported", keystore.PurposeDecrypt, key); !errors.Is(err, keystore.ErrKeyExists) {
		t.Errorf("again: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := s.ImportKey(ctx, "small", keystore.PurposeDecrypt, small); !errors.Is(err, keystore.ErrUnsupportedAlgorithm) {
		t.Errorf("RSA-1024: %v", err)
	}
	if _, err := s.ImportKey(ctx, "Bad/Alias", keystore.PurposeDecrypt, key); !errors.Is(err, keystore.ErrInvalidAlias) {
		t.Errorf("alias: %v", err)
	}
}
