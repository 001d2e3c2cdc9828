package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/keystore"
)

// useOnly hides everything but key use: a Keys that cannot administer keys
// or store requests, so a handler that reached for those through Deps.Keys
// would not compile, and one that needs them must get them from
// Deps.KeyAdmin or Deps.Requests.
type useOnly struct{ Keys }

// TestKeysSplit: Deps.Keys, Deps.KeyAdmin and Deps.Requests are separate
// (docs/architecture.md, "The server's view of the token"): key use works with only Keys,
// key changes and requests go to their own field, and a server without
// them answers Unimplemented instead of panicking.
func TestKeysSplit(t *testing.T) {
	for _, tt := range []struct {
		name  string
		admin bool
		want  codes.Code // of the key changes and requests
	}{
		{"key use only", false, codes.Unimplemented},
		{"admin and requests apart from key use", true, codes.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
				// One keystore fills all three when they are given.
				store := d.Keys.(*keystore.Store)
				d.Keys, d.KeyAdmin, d.Requests = useOnly{store}, nil, nil
				if tt.admin {
					d.KeyAdmin, d.Requests = store, store
				}
			}})
			ctx := ctxT(t)
			sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
			if _, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}); err != nil {
				t.Fatalf("sign: %v", err)
			}
			ks := pecetv1.NewKeyServiceClient(f.dial(t, "officer"))
			if _, err := ks.ListKeys(ctx, &pecetv1.ListKeysRequest{}); err != nil {
				t.Fatalf("list keys: %v", err)
			}
			for _, c := range []struct {
				name string
				call func(context.Context) error
			}{
				{"create", func(ctx context.Context) error {
					_, err := ks.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "split", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256})
					return err
				}},
				{"CSR", func(ctx context.Context) error {
					_, err := ks.CreateCSR(ctx, &pecetv1.CreateCSRRequest{Alias: "client-sign", Subject: "CN=Split,O=pecet,C=CZ"})
					return err
				}},
				{"list requests", func(ctx context.Context) error {
					_, err := ks.ListRequests(ctx, &pecetv1.ListRequestsRequest{})
					return err
				}},
			} {
				wantCode(t, c.name, c.call(ctx), tt.want)
			}
		})
	}
}
