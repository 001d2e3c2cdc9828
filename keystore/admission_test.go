package keystore_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"testing"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// TestBeenPrimary: Version.BeenPrimary, which dual control admits on
// (docs/security.md "Dual control"), is false for a rotated version until
// it becomes primary, also for a pending version an older release recorded
// without the mark, and stays true once it was primary.
func TestBeenPrimary(t *testing.T) {
	ctx := context.Background()
	s := softhsm.NewToken(t)
	v1 := enabledKey(t, s, "k", keystore.PurposeSign, keystore.ECP256)
	if !v1.BeenPrimary {
		t.Fatal("version 1, primary on its first certificate: BeenPrimary false")
	}
	v2, err := s.RotateKey(ctx, "k")
	if err != nil || v2.BeenPrimary {
		t.Fatalf("rotated v2: %+v %v", v2.BeenPrimary, err)
	}
	// Rewrite the metadata as an older release did: no never_primary.
	ms, err := keystore.RawMetas(s, "k")
	if err != nil || len(ms) != 1 {
		t.Fatal(len(ms), err)
	}
	var m map[string]any
	_ = json.Unmarshal(ms[0], &m)
	for _, v := range m["versions"].([]any) {
		delete(v.(map[string]any), "never_primary")
	}
	m["generation"] = m["generation"].(float64) + 1
	b, _ := json.Marshal(m)
	if err := keystore.PutRawMeta(s, "k", b); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	v2, err = s.ImportCertificate(ctx, "k", 2, []*x509.Certificate{ca.issue(t, "k2", v2.Public), ca.cert})
	if err != nil || v2.BeenPrimary {
		t.Fatalf("legacy pending v2 certified: BeenPrimary %v, %v", v2.BeenPrimary, err)
	}
	if _, err := s.SetPrimaryVersion(ctx, "k", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetPrimaryVersion(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	k, _ := s.GetKey(ctx, "k")
	if !k.Versions[0].BeenPrimary || !k.Versions[1].BeenPrimary {
		t.Fatalf("after both were primary: %v %v", k.Versions[0].BeenPrimary, k.Versions[1].BeenPrimary)
	}
}
