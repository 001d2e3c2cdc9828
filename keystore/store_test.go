package keystore_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestCreateKey(t *testing.T) {
	t.Parallel()
	s := softhsm.NewToken(t)
	ctx := context.Background()
	tests := []struct {
		alias   string
		purpose keystore.Purpose
		alg     keystore.Algorithm
		want    error
		rsaBits int
		curve   elliptic.Curve
	}{
		{alias: "client-sign", purpose: keystore.PurposeSign, alg: keystore.RSA2048, rsaBits: 2048},
		{alias: "cssz.decrypt_1", purpose: keystore.PurposeDecrypt, alg: keystore.RSA3072, rsaBits: 3072},
		// RSA-4096 generation takes seconds in SoftHSM: tested once, here.
		{alias: "tsa", purpose: keystore.PurposeTimestamp, alg: keystore.RSA4096, rsaBits: 4096},
		{alias: "ec256", purpose: keystore.PurposeSign, alg: keystore.ECP256, curve: elliptic.P256()},
		{alias: "ec384", purpose: keystore.PurposeTimestamp, alg: keystore.ECP384, curve: elliptic.P384()},
		{alias: "ec-decrypt", purpose: keystore.PurposeDecrypt, alg: keystore.ECP256, want: keystore.ErrUnsupportedAlgorithm},
		{alias: "rsa1024", purpose: keystore.PurposeSign, alg: "RSA_1024", want: keystore.ErrUnsupportedAlgorithm},
		{alias: "nopurpose", purpose: "ENCRYPT", alg: keystore.RSA2048, want: keystore.ErrInvalidPurpose},
		{alias: "client-sign", purpose: keystore.PurposeSign, alg: keystore.ECP256, want: keystore.ErrKeyExists},
		{alias: "", purpose: keystore.PurposeSign, alg: keystore.ECP256, want: keystore.ErrInvalidAlias},
		{alias: "Upper", purpose: keystore.PurposeSign, alg: keystore.ECP256, want: keystore.ErrInvalidAlias},
		{alias: "-dash", purpose: keystore.PurposeSign, alg: keystore.ECP256, want: keystore.ErrInvalidAlias},
		{alias: "a/b", purpose: keystore.PurposeSign, alg: keystore.ECP256, want: keystore.ErrInvalidAlias},
		{alias: strings.Repeat("a", 65), purpose: keystore.PurposeSign, alg: keystore.ECP256, want: keystore.ErrInvalidAlias},
	}
	created := 0
	for _, tt := range tests {
		v, err := s.CreateKey(ctx, tt.alias, tt.purpose, tt.alg)
		if tt.want != nil {
			if !errors.Is(err, tt.want) {
				t.Errorf("CreateKey(%q, %s, %s) = %v, want %v", tt.alias, tt.purpose, tt.alg, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("CreateKey(%q, %s, %s): %v", tt.alias, tt.purpose, tt.alg, err)
		}
		created++
		if v.Version != 1 || v.State != keystore.StatePendingCertificate || v.Primary || v.Certificate() != nil ||
			v.Alias != tt.alias || v.Purpose != tt.purpose || v.Algorithm != tt.alg || v.CreatedAt.IsZero() {
			t.Errorf("CreateKey(%q) = %+v", tt.alias, v)
		}
		switch pub := v.Public.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() != tt.rsaBits || pub.E != 65537 {
				t.Errorf("%s: RSA key of %d bits, e=%d", tt.alias, pub.N.BitLen(), pub.E)
			}
		case *ecdsa.PublicKey:
			if pub.Curve != tt.curve {
				t.Errorf("%s: curve %s", tt.alias, pub.Curve.Params().Name)
			}
		default:
			t.Errorf("%s: public key %T", tt.alias, v.Public)
		}
		k, err := s.GetKey(ctx, tt.alias)
		if err != nil || k.Alias != tt.alias || k.Purpose != tt.purpose || k.Algorithm != tt.alg || k.PrimaryVersion != 0 || len(k.Versions) != 1 {
			t.Errorf("GetKey(%q) = %+v, %v", tt.alias, k, err)
		}
	}
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != created {
		t.Fatalf("ListKeys: %d keys, %v; want %d", len(keys), err, created)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1].Alias >= keys[i].Alias {
			t.Errorf("ListKeys not sorted: %q before %q", keys[i-1].Alias, keys[i].Alias)
		}
	}
	if _, err := s.GetKey(ctx, "missing"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Errorf("GetKey(missing) = %v, want ErrKeyNotFound", err)
	}
	if _, err := s.GetKey(ctx, "Bad Alias"); !errors.Is(err, keystore.ErrInvalidAlias) {
		t.Errorf("GetKey(Bad Alias) = %v, want ErrInvalidAlias", err)
	}
}

func TestSecondStoreSeesKeysOfFirst(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	cfg.CacheTTL = time.Hour // only a miss may make s2 read the token
	ctx := context.Background()
	s1, err := keystore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := keystore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	if _, err := s2.GetKey(ctx, "shared"); !errors.Is(err, keystore.ErrKeyNotFound) {
		t.Fatalf("s2 before create: %v", err)
	}
	v, err := s1.CreateKey(ctx, "shared", keystore.PurposeSign, keystore.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s2.GetKey(ctx, "shared")
	if err != nil || k.Versions[0].State != keystore.StatePendingCertificate {
		t.Fatalf("s2 after create: %+v, %v", k, err)
	}
	// s2 now caches the pending version for an hour; s1 certifies it. A
	// Signer on s2 must treat "not enabled" from its cache as a miss.
	ca := newCA(t)
	if _, err := s1.ImportCertificate(ctx, "shared", 1, []*x509.Certificate{ca.issue(t, "shared", v.Public)}); err != nil {
		t.Fatal(err)
	}
	// s1 closing must not log s2 out: the login belongs to the process.
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	signer, err := s2.Signer(ctx, "shared", 0, keystore.PurposeSign)
	if err != nil {
		t.Fatalf("s2.Signer after s1 certified: %v", err)
	}
	digest := sha256.Sum256([]byte("shared"))
	sig, err := signer.Sign(nil, digest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(v.Public.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatalf("s2 sign: %v", err)
	}
	if err := s2.Ping(ctx); err != nil {
		t.Fatalf("s2.Ping after s1.Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	ctx := context.Background()

	t.Run("wrong PIN, one login", func(t *testing.T) {
		bad := cfg
		bad.PIN = "not-the-pin-42"
		_, f, err := openFault(ctx, bad)
		if !errors.Is(err, keystore.ErrPINIncorrect) {
			t.Fatalf("Open with wrong PIN = %v, want ErrPINIncorrect", err)
		}
		if strings.Contains(err.Error(), bad.PIN) {
			t.Errorf("error %q contains the PIN", err)
		}
		if n := f.Logins.Load(); n != 1 {
			t.Errorf("%d C_Login calls, want exactly 1", n)
		}
	})
	t.Run("right PIN, one login", func(t *testing.T) {
		s, f, err := openFault(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.CreateKey(ctx, "k", keystore.PurposeSign, keystore.ECP256); err != nil {
			t.Fatal(err)
		}
		if n := f.Logins.Load(); n != 1 {
			t.Errorf("%d C_Login calls, want exactly 1", n)
		}
	})
	tests := []struct {
		name string
		mod  func(c *keystore.Config)
		want error
	}{
		{"unknown label", func(c *keystore.Config) { c.TokenLabel = "no-such-token" }, keystore.ErrTokenNotFound},
		{"unknown serial", func(c *keystore.Config) { c.TokenLabel, c.TokenSerial = "", "0000" }, keystore.ErrTokenNotFound},
		{"bad module", func(c *keystore.Config) { c.ModulePath = "/nonexistent/libnothing.so" }, keystore.ErrModule},
		{"no module", func(c *keystore.Config) { c.ModulePath = "" }, keystore.ErrModule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			tt.mod(&c)
			if _, err := keystore.Open(ctx, c); !errors.Is(err, tt.want) {
				t.Errorf("Open = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("label and serial must both match", func(t *testing.T) {
		s, err := keystore.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		info := s.Token()
		s.Close()
		if info.Label != cfg.TokenLabel || info.Serial == "" || info.Sessions < 1 {
			t.Fatalf("Token() = %+v", info)
		}
		c := cfg
		c.TokenSerial = info.Serial
		s, err = keystore.Open(ctx, c)
		if err != nil {
			t.Fatalf("Open with the token's label and serial: %v", err)
		}
		s.Close()
		c.TokenSerial = "1234"
		if _, err := keystore.Open(ctx, c); !errors.Is(err, keystore.ErrTokenNotFound) {
			t.Errorf("Open with the label and another serial = %v, want ErrTokenNotFound", err)
		}
		c.TokenLabel = ""
		c.TokenSerial = info.Serial
		s, err = keystore.Open(ctx, c)
		if err != nil {
			t.Fatalf("Open by serial alone: %v", err)
		}
		s.Close()
	})
	t.Run("no selector", func(t *testing.T) {
		c := cfg
		c.TokenLabel = ""
		if _, err := keystore.Open(ctx, c); err == nil {
			t.Error("Open with no token selector succeeded")
		}
	})
	t.Run("duplicate token label", func(t *testing.T) {
		err := keystore.InitToken(cfg.ModulePath, cfg.TokenLabel, "so-pin-1", "user-pin-1")
		if !errors.Is(err, keystore.ErrTokenExists) {
			t.Errorf("InitToken(existing label) = %v, want ErrTokenExists", err)
		}
	})
}

func TestPingAndClose(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	ctx := context.Background()
	s, err := keystore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	caps := s.Capabilities()
	if !caps.RSAPKCS1v15 || !caps.RSAPSS || !caps.RSAOAEP || !caps.RSARaw || !caps.ECDSA {
		t.Errorf("SoftHSM capabilities = %+v, want all", caps)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, keystore.ErrTokenUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrTokenUnavailable", err)
	}
	if _, err := s.ListKeys(ctx); !errors.Is(err, keystore.ErrTokenUnavailable) {
		t.Errorf("ListKeys after Close = %v, want ErrTokenUnavailable", err)
	}
}

// TestSignerCache: while the cache is fresh, Signer does no C_FindObjects;
// once it expires, the token is read again.
func TestSignerCache(t *testing.T) {
	t.Parallel()
	cfg := softhsm.NewTokenConfig(t)
	cfg.CacheTTL = time.Hour
	ctx := context.Background()
	s, f, err := openFault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	enabledKey(t, s, "hot", keystore.PurposeSign, keystore.ECP256)
	if _, err := s.Signer(ctx, "hot", 0, keystore.PurposeSign); err != nil {
		t.Fatal(err)
	}
	before := f.Finds.Load()
	for range 100 {
		if _, err := s.Signer(ctx, "hot", 0, keystore.PurposeSign); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.Finds.Load() - before; n != 0 {
		t.Errorf("%d C_FindObjectsInit calls for 100 Signer calls on a fresh cache, want 0", n)
	}

	cfg.CacheTTL = time.Nanosecond
	s2, f2, err := openFault(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for range 3 {
		if _, err := s2.Signer(ctx, "hot", 0, keystore.PurposeSign); err != nil {
			t.Fatal(err)
		}
	}
	if f2.Finds.Load() < 3 {
		t.Errorf("%d C_FindObjectsInit calls with an expired cache, want a read per Signer", f2.Finds.Load())
	}
}
