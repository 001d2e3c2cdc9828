package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func TestUnloggedHelper(t *testing.T) { softhsm.UnloggedHelper(t) }

// TestKeyObjectSwappedWithoutLogin: another process without the PIN
// replaces gateway-decrypt's public key object; Encrypt to the alias and
// Decrypt refuse it with a status that says why, and ListKeys shows the
// version's problem. docs/security.md "Certificates on the token".
func TestKeyObjectSwappedWithoutLogin(t *testing.T) {
	cfg := softhsm.NewTokenConfig(t)
	cfg.CacheTTL = time.Millisecond
	store, err := keystore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := newFixtureOpts(t, fixtureOpts{store: store})
	ctx := ctxT(t)
	ec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	data := []byte("<PRIHL>secret</PRIHL>")
	er, err := ec.Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{"gateway-decrypt"}})
	if err != nil {
		t.Fatal(err)
	}

	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	evil := f.issue(t, "attacker", devca.CMSDecrypt, attacker.Public())[0]
	if got := softhsm.RunUnlogged(t, cfg, softhsm.UnloggedCountCerts, "gateway-decrypt", 1, nil); got != "certs 0" {
		t.Fatalf("a session without login sees the certificates: %s", got)
	}
	softhsm.RunUnlogged(t, cfg, softhsm.UnloggedReplacePublicKey, "gateway-decrypt", 1, evil)

	_, err = ec.Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{"gateway-decrypt"}})
	wantCode(t, "encrypt to the tampered alias", err, codes.FailedPrecondition)
	if !strings.Contains(status.Convert(err).Message(), "does not match its private key") {
		t.Errorf("message: %q", status.Convert(err).Message())
	}
	_, err = pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway")).Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: er.GetEnveloped(), Key: "gateway-decrypt"})
	wantCode(t, "decrypt with the tampered version", err, codes.FailedPrecondition)
	l, err := pecetv1.NewKeyServiceClient(f.dial(t, "officer")).ListKeys(ctx, &pecetv1.ListKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range l.GetKeys() {
		if p := k.GetVersions()[0].GetProblem(); (p != "") != (k.GetAlias() == "gateway-decrypt") {
			t.Errorf("%s: problem %q", k.GetAlias(), p)
		}
	}
}
