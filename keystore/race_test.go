package keystore_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// TestMetadataConflicts: what two replicas racing (or damage) leave on the
// token never hides the alias or the others. Two metadata objects of one
// generation read as the one with the smaller nonce, on every reader, and
// the next change settles them into one; a damaged metadata object makes
// only its alias unreadable in ListKeys. docs/security.md "Replicas
// changing one key".
func TestMetadataConflicts(t *testing.T) {
	ctx := context.Background()
	s := softhsm.NewToken(t)
	enabledKey(t, s, "a", keystore.PurposeSign, keystore.ECP256)
	enabledKey(t, s, "b", keystore.PurposeSign, keystore.ECP256)
	if _, err := s.RotateKey(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	// A twin of a's metadata: same generation, primary 0 and a nonce that
	// sorts first, as a racing writer's object would be.
	ms, err := keystore.RawMetas(s, "a")
	if err != nil || len(ms) != 1 {
		t.Fatalf("metadata of a: %d, %v", len(ms), err)
	}
	var twin map[string]any
	if err := json.Unmarshal(ms[0], &twin); err != nil {
		t.Fatal(err)
	}
	twin["nonce"] = ""
	twin["versions"] = twin["versions"].([]any)[:1]
	b, _ := json.Marshal(twin)
	if err := keystore.PutRawMeta(s, "a", b); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		k, err := s.GetKey(ctx, "a")
		if err != nil || len(k.Versions) != 1 {
			t.Fatalf("with a tie: %v versions, %v; want the twin (1 version)", len(k.Versions), err)
		}
	}
	// The next change waits for the tie, then settles it as readers read.
	if _, err := s.RotateKey(ctx, "a"); err != nil {
		t.Fatalf("rotate over a tie: %v", err)
	}
	if ms, _ := keystore.RawMetas(s, "a"); len(ms) != 1 {
		t.Fatalf("%d metadata objects after the change, want 1", len(ms))
	}
	if k, err := s.GetKey(ctx, "a"); err != nil || len(k.Versions) != 2 {
		t.Fatalf("after the change: %+v %v", k, err)
	}

	// Damage: b's listing shows the error, a still lists.
	if err := keystore.PutRawMeta(s, "b", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys: %d keys, %v", len(keys), err)
	}
	if keys[0].Alias != "a" || keys[0].Err != nil || len(keys[0].Versions) != 2 {
		t.Errorf("a: %+v", keys[0])
	}
	if keys[1].Alias != "b" || keys[1].Err == nil {
		t.Errorf("b: want its error, got %+v", keys[1])
	}
	if _, err := s.GetKey(ctx, "b"); err == nil || errors.Is(err, keystore.ErrKeyNotFound) {
		t.Errorf("GetKey(b): %v, want the damage", err)
	}
}
