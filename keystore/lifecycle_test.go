package keystore_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestImportCertificate(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	v, err := s.CreateKey(ctx, "client-sign", keystore.PurposeSign, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateKey(ctx, "other", keystore.PurposeSign, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, otherCA := newCA(t), newCA(t)
	leaf := ca.issue(t, "client-sign", v.Public)

	refusals := []struct {
		name    string
		alias   string
		version int
		chain   []*x509.Certificate
		want    error
	}{
		{"another key's certificate", "client-sign", 1, []*x509.Certificate{ca.issue(t, "other", other.Public)}, keystore.ErrCertificateMismatch},
		{"issuer not the next in chain", "client-sign", 1, []*x509.Certificate{leaf, otherCA.cert}, keystore.ErrCertificateMismatch},
		{"empty chain", "client-sign", 1, nil, keystore.ErrCertificateMismatch},
		{"no such version", "client-sign", 2, []*x509.Certificate{leaf}, keystore.ErrVersionNotFound},
		{"no such alias", "nobody", 1, []*x509.Certificate{leaf}, keystore.ErrKeyNotFound},
		{"bad alias", "No", 1, []*x509.Certificate{leaf}, keystore.ErrInvalidAlias},
	}
	for _, tt := range refusals {
		if _, err := s.ImportCertificate(ctx, tt.alias, tt.version, tt.chain); !errors.Is(err, tt.want) {
			t.Errorf("%s: ImportCertificate = %v, want %v", tt.name, err, tt.want)
		}
	}
	if k, _ := s.GetKey(ctx, "client-sign"); k.Versions[0].State != keystore.StatePendingCertificate {
		t.Fatalf("after refusals: %+v", k.Versions[0])
	}

	got, err := s.ImportCertificate(ctx, "client-sign", 1, []*x509.Certificate{leaf, ca.cert})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != keystore.StateEnabled || !got.Primary || len(got.Chain) != 2 ||
		!got.Chain[0].Equal(leaf) || !got.Chain[1].Equal(ca.cert) || !got.Certificate().Equal(leaf) {
		t.Errorf("after import: %+v", got)
	}
	k, err := s.ListKeys(ctx)
	if err != nil || len(k) != 2 || k[0].Alias != "client-sign" || k[0].PrimaryVersion != 1 || len(k[0].Versions[0].Chain) != 2 {
		t.Errorf("ListKeys = %+v, %v", k, err)
	}

	// Renewal: a new certificate for the same key replaces the chain.
	renewed := ca.issue(t, "client-sign renewed", v.Public)
	got, err = s.ImportCertificate(ctx, "client-sign", 1, []*x509.Certificate{renewed})
	if err != nil || len(got.Chain) != 1 || !got.Chain[0].Equal(renewed) || got.State != keystore.StateEnabled {
		t.Errorf("renewal: %+v, %v", got, err)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	ca := newCA(t)
	v1 := enabledKey(t, s, "cssz-decrypt", keystore.PurposeDecrypt, keystore.RSA2048)

	v2, err := s.RotateKey(ctx, "cssz-decrypt")
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || v2.State != keystore.StatePendingCertificate || v2.Primary || v2.Algorithm != keystore.RSA2048 || v2.Purpose != keystore.PurposeDecrypt {
		t.Fatalf("RotateKey = %+v", v2)
	}
	if v2.Public.(*rsa.PublicKey).Equal(v1.Public) {
		t.Fatal("rotation reused the key")
	}
	if v2, err = s.ImportCertificate(ctx, "cssz-decrypt", 2, []*x509.Certificate{ca.issue(t, "v2", v2.Public)}); err != nil || v2.Primary {
		t.Fatalf("certified v2: %+v, %v (must not take over as primary)", v2, err)
	}
	if d, err := s.Decrypter(ctx, "cssz-decrypt", 0); err != nil || d.Version().Version != 1 {
		t.Fatalf("primary before switch: %v", err)
	}
	// Both enabled versions decrypt (data from before a rotation opens).
	for _, ver := range []int{1, 2} {
		if _, err := s.Decrypter(ctx, "cssz-decrypt", ver); err != nil {
			t.Errorf("Decrypter(v%d): %v", ver, err)
		}
	}
	k, err := s.SetPrimaryVersion(ctx, "cssz-decrypt", 2)
	if err != nil || k.PrimaryVersion != 2 || !k.Versions[1].Primary || k.Versions[0].Primary {
		t.Fatalf("SetPrimaryVersion: %+v, %v", k, err)
	}
	if d, err := s.Decrypter(ctx, "cssz-decrypt", 0); err != nil || d.Version().Version != 2 {
		t.Fatalf("primary after switch: %v", err)
	}

	steps := []struct {
		name    string
		do      func() (keystore.Version, error)
		want    error
		wantNow keystore.State
	}{
		{"disable primary", func() (keystore.Version, error) { return s.DisableKeyVersion(ctx, "cssz-decrypt", 2) }, keystore.ErrInvalidState, ""},
		{"destroy enabled", func() (keystore.Version, error) { return s.DestroyKeyVersion(ctx, "cssz-decrypt", 1) }, keystore.ErrInvalidState, ""},
		{"disable v1", func() (keystore.Version, error) { return s.DisableKeyVersion(ctx, "cssz-decrypt", 1) }, nil, keystore.StateDisabled},
		{"disable v1 again", func() (keystore.Version, error) { return s.DisableKeyVersion(ctx, "cssz-decrypt", 1) }, nil, keystore.StateDisabled},
		{"enable v1", func() (keystore.Version, error) { return s.EnableKeyVersion(ctx, "cssz-decrypt", 1) }, nil, keystore.StateEnabled},
		{"disable v1 once more", func() (keystore.Version, error) { return s.DisableKeyVersion(ctx, "cssz-decrypt", 1) }, nil, keystore.StateDisabled},
		{"destroy v1", func() (keystore.Version, error) { return s.DestroyKeyVersion(ctx, "cssz-decrypt", 1) }, nil, keystore.StateDestroyed},
		{"enable destroyed", func() (keystore.Version, error) { return s.EnableKeyVersion(ctx, "cssz-decrypt", 1) }, keystore.ErrInvalidState, ""},
		{"unknown version", func() (keystore.Version, error) { return s.DisableKeyVersion(ctx, "cssz-decrypt", 9) }, keystore.ErrVersionNotFound, ""},
	}
	for _, st := range steps {
		v, err := st.do()
		if !errors.Is(err, st.want) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.want)
		}
		if err == nil && v.State != st.wantNow {
			t.Fatalf("%s: state %s, want %s", st.name, v.State, st.wantNow)
		}
	}
	if _, err := s.Decrypter(ctx, "cssz-decrypt", 1); !errors.Is(err, keystore.ErrKeyNotEnabled) {
		t.Errorf("Decrypter(destroyed) = %v, want ErrKeyNotEnabled", err)
	}
	if _, err := s.SetPrimaryVersion(ctx, "cssz-decrypt", 1); !errors.Is(err, keystore.ErrKeyNotEnabled) {
		t.Errorf("SetPrimaryVersion(destroyed) = %v, want ErrKeyNotEnabled", err)
	}
	// The destroyed version's key objects are gone; its certificate and
	// record stay, and the public key is still known from the certificate.
	k, err = s.GetKey(ctx, "cssz-decrypt")
	if err != nil || k.Versions[0].State != keystore.StateDestroyed || k.Versions[0].Public == nil || k.Versions[0].Certificate() == nil {
		t.Errorf("destroyed version: %+v, %v", k.Versions[0], err)
	}
	if priv, pub, err := keystore.KeyObjects(s, "cssz-decrypt", 1); err != nil || priv != 0 || pub != 0 {
		t.Errorf("destroyed version has %d private and %d public key objects left (%v)", priv, pub, err)
	}
	if priv, pub, err := keystore.KeyObjects(s, "cssz-decrypt", 2); err != nil || priv != 1 || pub != 1 {
		t.Errorf("version 2 has %d private and %d public key objects (%v)", priv, pub, err)
	}

	// A fresh Store reads the same states from the token alone.
	t.Run("states persist", func(t *testing.T) {
		s2 := softhsm.NewToken(t) // another token: must not see the key
		if _, err := s2.GetKey(ctx, "cssz-decrypt"); !errors.Is(err, keystore.ErrKeyNotFound) {
			t.Errorf("other token sees the key: %v", err)
		}
	})
}
