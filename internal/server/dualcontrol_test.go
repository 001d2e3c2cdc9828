package server

import (
	"context"
	"crypto/x509"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/keystore"
)

// certifyOnToken makes version 1 of alias ENABLED and primary directly on
// the store, as an approved create and first certification would.
func certifyOnToken(t *testing.T, f *fixture, alias string, p keystore.Purpose, a keystore.Algorithm, kind devca.Kind) {
	t.Helper()
	ctx := context.Background()
	v, err := f.store.CreateKey(ctx, alias, p, a)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.ca.Issue(alias+" v1", kind, v.Public, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(ctx, alias, 1, []*x509.Certificate{c, f.ca.Cert}); err != nil {
		t.Fatal(err)
	}
}

// approveOnly approves the one pending request of bob's listing and fails
// unless there is exactly one.
//
//nolint:revive // a test helper takes t first, as the testing package's helpers do
func approveOnly(t *testing.T, ctx context.Context, bob pecetv1.KeyServiceClient, op string) *pecetv1.KeyChange {
	t.Helper()
	lr, err := bob.ListRequests(ctx, &pecetv1.ListRequestsRequest{})
	if err != nil || len(lr.GetRequests()) != 1 || lr.GetRequests()[0].GetOperation() != op {
		t.Fatalf("want one %s request: %v %v", op, lr, err)
	}
	ch, err := bob.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: lr.GetRequests()[0].GetId()})
	if err != nil {
		t.Fatalf("approve %s: %v", op, err)
	}
	return ch
}

// TestDualControlAdmission: with set-primary under dual control, one
// officer alone can neither make a new version usable (rotate + certify,
// then Sign or Decrypt naming the version) nor change what the version in
// use is (replace its certificate). docs/security.md "Dual control".
func TestDualControlAdmission(t *testing.T) {
	f := newFixtureOpts(t, fixtureOpts{deps: func(d *Deps) {
		d.Auth = authz.New(append(slices.Clone(clientsConf), config.Client{Identity: "dual-gateway", Roles: []string{"gateway"}, Keys: []string{"dual-dec"}}))
	}})
	ctx := ctxT(t)
	alice := pecetv1.NewKeyServiceClient(f.dial(t, "officer"))
	bob := pecetv1.NewKeyServiceClient(f.dial(t, "officer-2"))
	sc := pecetv1.NewSignServiceClient(f.dial(t, "wide-client"))
	ec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	gw := pecetv1.NewEnvelopeServiceClient(f.dial(t, "dual-gateway"))
	certifyOnToken(t, f, "dual-sign", keystore.PurposeSign, keystore.ECP256, devca.CMSSign)
	certifyOnToken(t, f, "dual-dec", keystore.PurposeDecrypt, keystore.RSA2048, devca.CMSDecrypt)
	data := []byte("<PRIHL>dual</PRIHL>")
	sign := func(v uint32) (*pecetv1.SignResponse, error) {
		return sc.Sign(ctx, &pecetv1.SignRequest{Key: "dual-sign", Version: v, Input: &pecetv1.SignRequest_Data{Data: data}})
	}

	// Alice alone: rotate (not dual-controlled here) and certify v2.
	for _, alias := range []string{"dual-sign", "dual-dec"} {
		rot, err := alice.RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: alias})
		if err != nil || rot.GetVersion() != 2 || rot.GetPendingRequest() != nil {
			t.Fatalf("rotate %s: %v %v", alias, rot, err)
		}
	}
	v2pub := publicOf(t, f, "dual-sign", 2)
	ch, err := alice.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "dual-sign", Version: 2, Chain: f.issue(t, "dual-sign v2", devca.CMSSign, v2pub)})
	if err != nil || ch.GetPendingRequest() != nil || ch.GetKey().GetVersions()[1].GetState() != pecetv1.KeyState_ENABLED {
		t.Fatalf("certify v2 (not in use: one officer): %v %v", ch, err)
	}
	if !ch.GetKey().GetVersions()[1].GetAwaitingApproval() || ch.GetKey().GetVersions()[0].GetAwaitingApproval() {
		t.Errorf("awaiting_approval: want v2 only: v1 %v v2 %v", ch.GetKey().GetVersions()[0].GetAwaitingApproval(), ch.GetKey().GetVersions()[1].GetAwaitingApproval())
	}
	decV2Chain := f.issue(t, "dual-dec v2", devca.CMSDecrypt, publicOf(t, f, "dual-dec", 2))
	if _, err := alice.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "dual-dec", Version: 2, Chain: decV2Chain}); err != nil {
		t.Fatal(err)
	}

	// Not admitted: no signature, no decryption with v2.
	_, err = sign(2)
	wantCode(t, "sign with unadmitted v2", err, codes.FailedPrecondition)
	if s, err := sign(0); err != nil || s.GetVersion() != 1 {
		t.Fatalf("primary still signs: %v %v", s, err)
	}
	er, err := ec.Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientCertificates: [][]byte{decV2Chain[0]}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gw.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: er.GetEnveloped(), Key: "dual-dec"})
	wantCode(t, "decrypt with unadmitted v2", err, codes.FailedPrecondition)
	_, err = gw.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: er.GetEnveloped()})
	wantCode(t, "decrypt with unadmitted v2, any key", err, codes.FailedPrecondition)

	// Alice alone cannot replace the certificate of the primary: a request.
	k, _ := f.store.GetKey(ctx, "dual-sign")
	oldSubject := k.Versions[0].Certificate().Subject.CommonName
	other := f.issue(t, "someone else", devca.CMSSign, k.Versions[0].Public)
	ch, err = alice.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "dual-sign", Version: 1, Chain: other})
	if err != nil || ch.GetPendingRequest().GetOperation() != "import-certificate" || len(ch.GetPendingRequest().GetCertificateChain()) != 2 {
		t.Fatalf("replace the primary's certificate: want a pending request: %v %v", ch, err)
	}
	if k, _ := f.store.GetKey(ctx, "dual-sign"); k.Versions[0].Certificate().Subject.CommonName != oldSubject {
		t.Fatalf("the certificate was replaced before approval: %s", k.Versions[0].Certificate().Subject)
	}
	_, err = alice.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: ch.GetPendingRequest().GetId()})
	wantCode(t, "self-approval of the certificate", err, codes.PermissionDenied)
	approveOnly(t, ctx, bob, "import-certificate")
	if k, _ := f.store.GetKey(ctx, "dual-sign"); k.Versions[0].Certificate().Subject.CommonName != "someone else" {
		t.Fatalf("approved certificate not in place: %s", k.Versions[0].Certificate().Subject)
	}
	// A certificate for another key is refused up front, not filed.
	_, err = alice.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "dual-sign", Version: 1, Chain: f.issue(t, "x", devca.CMSSign, v2pub)})
	wantCode(t, "request with a certificate of another key", err, codes.InvalidArgument)

	// Set-primary with two officers admits v2; v1 stays usable by number.
	ch, err = alice.SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: "dual-sign", Version: 2})
	if err != nil || ch.GetPendingRequest() == nil {
		t.Fatalf("set-primary: %v %v", ch, err)
	}
	_, err = sign(2)
	wantCode(t, "sign with v2 while set-primary is pending", err, codes.FailedPrecondition)
	approveOnly(t, ctx, bob, "set-primary")
	for _, v := range []uint32{0, 2, 1} {
		s, err := sign(v)
		if err != nil || (v != 0 && s.GetVersion() != v) || (v == 0 && s.GetVersion() != 2) {
			t.Fatalf("sign v%d after approval: %v %v", v, s, err)
		}
	}

	// A new alias's first certificate makes it primary: dual-controlled too.
	if _, err := alice.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "dual-new", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256}); err != nil {
		t.Fatal(err)
	}
	approveOnly(t, ctx, bob, "create")
	ch, err = alice.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "dual-new", Chain: f.issue(t, "dual-new", devca.CMSSign, publicOf(t, f, "dual-new", 1))})
	if err != nil || ch.GetPendingRequest() == nil {
		t.Fatalf("first certificate: want a request: %v %v", ch, err)
	}
	_, err = sc.Sign(ctx, &pecetv1.SignRequest{Key: "dual-new", Input: &pecetv1.SignRequest_Data{Data: data}})
	wantCode(t, "sign before the first certificate is approved", err, codes.FailedPrecondition)
	approveOnly(t, ctx, bob, "import-certificate")
	if s, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "dual-new", Input: &pecetv1.SignRequest_Data{Data: data}}); err != nil || s.GetVersion() != 1 {
		t.Fatalf("sign after approval: %v %v", s, err)
	}
}
