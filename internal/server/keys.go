package server

import (
	"context"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
)

type keyService struct {
	pecetv1.UnimplementedKeyServiceServer
	s *Server
}

// ListKeys shows the keys the caller may use (officers: all).
func (ks *keyService) ListKeys(ctx context.Context, _ *pecetv1.ListKeysRequest) (*pecetv1.ListKeysResponse, error) {
	keys, err := ks.s.d.Keys.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	caller := authz.CallerFrom(ctx)
	resp := &pecetv1.ListKeysResponse{}
	for _, k := range keys {
		if caller.MayUseKey(k.Alias) {
			resp.Keys = append(resp.Keys, keyProto(k))
		}
	}
	return resp, nil
}

// GetKey shows one key the caller may use. A key the caller may not use is
// reported as not found, so aliases do not leak to other roles.
func (ks *keyService) GetKey(ctx context.Context, req *pecetv1.GetKeyRequest) (*pecetv1.Key, error) {
	if req.GetAlias() == "" {
		return nil, grpcerr.InvalidArgument("alias is required")
	}
	if !authz.CallerFrom(ctx).MayUseKey(req.GetAlias()) {
		return nil, keystore.ErrKeyNotFound
	}
	k, err := ks.s.d.Keys.GetKey(ctx, req.GetAlias())
	if err != nil {
		return nil, err
	}
	return keyProto(k), nil
}
