package keystore_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestUnloggedHelper(t *testing.T) { softhsm.UnloggedHelper(t) }

// TestCertificateSwapWithoutLogin: a process without the PIN replaces a
// version's certificate or public key object on the token; the version is
// refused for every use, visibly (Version.Problem), and certificates that
// this release writes cannot be seen or replaced without login.
// docs/security.md "Certificates on the token".
func TestCertificateSwapWithoutLogin(t *testing.T) {
	ctx := context.Background()
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	evil := ca.issue(t, "attacker", attacker.Public())
	cases := []struct {
		name      string
		purpose   keystore.Purpose
		algorithm keystore.Algorithm
		legacy    bool // certificates written public, as older releases did
		action    string
		refused   bool
	}{
		{"legacy decrypt certificate replaced", keystore.PurposeDecrypt, keystore.RSA2048, true, softhsm.UnloggedReplaceCert, true},
		{"legacy EC sign certificate replaced", keystore.PurposeSign, keystore.ECP256, true, softhsm.UnloggedReplaceCert, true},
		{"decrypt public key object replaced", keystore.PurposeDecrypt, keystore.RSA2048, false, softhsm.UnloggedReplacePublicKey, true},
		{"private certificate: a public one added beside it", keystore.PurposeDecrypt, keystore.RSA2048, false, softhsm.UnloggedReplaceCert, false},
		{"private EC certificate: a public one added beside it", keystore.PurposeSign, keystore.ECP256, false, softhsm.UnloggedReplaceCert, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := softhsm.NewTokenConfig(t)
			cfg.CacheTTL = time.Millisecond // see the other process's change at once
			s, err := keystore.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			v := enabledKey(t, s, "victim", c.purpose, c.algorithm)
			want := v.Certificate().Raw
			if c.legacy {
				if err := keystore.MakeChainPublic(s, "victim", 1); err != nil {
					t.Fatal(err)
				}
			}
			seen := "certs 0"
			if c.legacy {
				seen = "certs 2"
			}
			if got := softhsm.RunUnlogged(t, cfg, softhsm.UnloggedCountCerts, "victim", 1, nil); got != seen {
				t.Fatalf("a session without login sees %q, want %q", got, seen)
			}
			softhsm.RunUnlogged(t, cfg, c.action, "victim", 1, evil.Raw)

			k, err := s.GetKey(ctx, "victim")
			if err != nil {
				t.Fatalf("GetKey: %v", err)
			}
			got := k.Versions[0]
			if (got.Problem != "") != c.refused {
				t.Fatalf("Problem %q, want refused=%v", got.Problem, c.refused)
			}
			var useErr error
			if c.purpose == keystore.PurposeDecrypt {
				_, useErr = s.Decrypter(ctx, "victim", 0)
			} else {
				_, useErr = s.Signer(ctx, "victim", 0, c.purpose)
			}
			if c.refused {
				if !errors.Is(useErr, keystore.ErrVersionRefused) {
					t.Fatalf("use after the swap: %v, want ErrVersionRefused", useErr)
				}
				if c.action != softhsm.UnloggedReplaceCert {
					return
				}
				// An officer's import of a matching certificate repairs it.
				if _, err := s.ImportCertificate(ctx, "victim", 1, v.Chain); err != nil {
					t.Fatalf("re-import: %v", err)
				}
				if k, _ := s.GetKey(ctx, "victim"); k.Versions[0].Problem != "" {
					t.Fatalf("still refused after re-import: %s", k.Versions[0].Problem)
				}
				return
			}
			if useErr != nil || string(got.Certificate().Raw) != string(want) {
				t.Fatalf("the private certificate must win over the added public one: %v, subject %s", useErr, got.Certificate().Subject)
			}
		})
	}
}
