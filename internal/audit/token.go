package audit

import (
	"context"

	"github.com/pecet-hsm/pecet/keystore"
)

// TokenKey returns CheckpointOptions.Key for the AUDIT key alias on the
// token: its primary version. Each signature takes one pooled session for
// one C_Sign (keystore.KeySigner), so a checkpoint never holds a session.
func TokenKey(ks *keystore.Store, alias string) func(context.Context) (CheckpointKey, error) {
	return func(ctx context.Context) (CheckpointKey, error) {
		return ks.Signer(ctx, alias, 0, keystore.PurposeAudit)
	}
}
