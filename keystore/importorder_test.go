package keystore_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/internal/faultinject"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// TestImportCertificateAtomic: an ImportCertificate whose metadata write
// fails leaves the version's certificate chain and its metadata as they
// were, never the new chain under the old metadata, also when the token
// then refuses to remove the certificates the failed call wrote; when the
// failure comes after the metadata's commit (the old object's destroy),
// both are the new ones (docs/security.md "Importing a certificate").
// Each case is then repaired by the same import without faults.
func TestImportCertificateAtomic(t *testing.T) {
	metaCreate := func(w faultinject.ObjectWrite) bool {
		return !w.Destroy && w.Class == pkcs11.CKO_DATA && w.Application == "pecet"
	}
	metaDestroy := func(w faultinject.ObjectWrite) bool {
		return w.Destroy && w.Class == pkcs11.CKO_DATA && w.Application == "pecet"
	}
	certDestroy := func(w faultinject.ObjectWrite) bool { return w.Destroy && w.Class == pkcs11.CKO_CERTIFICATE }
	either := func(fs ...func(faultinject.ObjectWrite) bool) func(faultinject.ObjectWrite) bool {
		return func(w faultinject.ObjectWrite) bool {
			for _, f := range fs {
				if f(w) {
					return true
				}
			}
			return false
		}
	}
	for _, tc := range []struct {
		name      string
		certified bool // version 1 has a chain already (else it is pending)
		fail      func(faultinject.ObjectWrite) bool
		mayBeNew  bool // the failure is after the commit: old or new, both whole
	}{
		{"pending, metadata create fails", false, metaCreate, false},
		{"certified, metadata create fails", true, metaCreate, false},
		{"pending, metadata create and certificate removal fail", false, either(metaCreate, certDestroy), false},
		{"certified, metadata create and certificate removal fail", true, either(metaCreate, certDestroy), false},
		{"certified, old metadata destroy fails", true, metaDestroy, true},
		{"pending, every metadata write fails", false, either(metaCreate, metaDestroy), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := softhsm.NewTokenConfig(t)
			s, f, err := openFault(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			v, err := s.CreateKey(ctx, "k", keystore.PurposeSign, keystore.ECP256)
			if err != nil {
				t.Fatal(err)
			}
			ca := newCA(t)
			if tc.certified {
				if _, err := s.ImportCertificate(ctx, "k", 1, []*x509.Certificate{ca.issue(t, "old", v.Public), ca.cert}); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, s)
			newChain := []*x509.Certificate{ca.issue(t, "new", v.Public)}

			f.FailObjectWrites(tc.fail, pkcs11.CKR_DEVICE_MEMORY)
			_, err = s.ImportCertificate(ctx, "k", 1, newChain)
			f.FailObjectWrites(nil, 0)
			if err == nil {
				t.Fatal("ImportCertificate succeeded through an injected failure")
			}
			// A second Store reads the token afresh, as another replica.
			other := openPlain(t, cfg)
			for name, st := range map[string]*keystore.Store{"same store": s, "another store": other} {
				got := snapshot(t, st)
				isOld := got == before
				isNew := got == (versionState{state: keystore.StateEnabled, primary: true, chain: chainKey(newChain)})
				if !isOld && !(tc.mayBeNew && isNew) {
					t.Errorf("%s after the failed import: %+v; before: %+v", name, got, before)
				}
			}

			// The same import without faults repairs whatever is left.
			if _, err := s.ImportCertificate(ctx, "k", 1, newChain); err != nil {
				t.Fatal(err)
			}
			want := versionState{state: keystore.StateEnabled, primary: true, chain: chainKey(newChain)}
			if got := snapshot(t, openPlain(t, cfg)); got != want {
				t.Errorf("after the repeated import: %+v, want %+v", got, want)
			}
			// Nothing is left beside the chain in force.
			if n := certObjects(t, f, cfg.TokenLabel, "k"); n != len(newChain) {
				t.Errorf("%d certificate objects on the token, want %d", n, len(newChain))
			}
		})
	}
}

// versionState is what ImportCertificate changes about version 1 of "k":
// its state, whether it is primary, and its chain.
type versionState struct {
	state   keystore.State
	primary bool
	chain   string
	problem string
}

func snapshot(t *testing.T, s *keystore.Store) versionState {
	t.Helper()
	k, err := s.GetKey(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	v := k.Versions[0]
	return versionState{state: v.State, primary: v.Primary, chain: chainKey(v.Chain), problem: v.Problem}
}

// chainKey is a comparable, printable form of a chain: the start of each
// certificate's SHA-256, in order.
func chainKey(chain []*x509.Certificate) string {
	var parts []string
	for _, c := range chain {
		sum := sha256.Sum256(c.Raw)
		parts = append(parts, hex.EncodeToString(sum[:6]))
	}
	return strings.Join(parts, ",")
}

func openPlain(t *testing.T, cfg keystore.Config) *keystore.Store {
	t.Helper()
	s, err := keystore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// certObjects counts the certificate objects labelled alias on the token,
// in a session of its own (the Store's login covers it).
func certObjects(t *testing.T, f *faultinject.Faults, token, alias string) int {
	t.Helper()
	slots, err := f.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, slot := range slots {
		ti, err := f.GetTokenInfo(slot)
		if err != nil || strings.TrimRight(ti.Label, " ") != token {
			continue
		}
		sh, err := f.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer f.CloseSession(sh)
		if err := f.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE), pkcs11.NewAttribute(pkcs11.CKA_LABEL, alias)}); err != nil {
			t.Fatal(err)
		}
		hs, _, err := f.FindObjects(sh, 100)
		_ = f.FindObjectsFinal(sh)
		if err != nil {
			t.Fatal(err)
		}
		return len(hs)
	}
	t.Fatalf("no token %q", token)
	return 0
}
