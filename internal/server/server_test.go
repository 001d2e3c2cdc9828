package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/rpctable"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/softhsm"
	"github.com/pecet-hsm/pecet/tsa"
)

// fixture is a server on a real SoftHSM token, reached over bufconn with
// real mTLS, and a CA that issues client identities.
type fixture struct {
	ca        *devca.CA
	lis       *bufconn.Listener
	store     *keystore.Store
	srv       *Server
	auditFile string
	clock     *fakeClock
	addr      string // the TCP address with fixtureOpts.tcp
}

// fakeClock is the server's clock in tests (dual-control expiry).
type fakeClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// fixtureOpts change the fixture: a store of the test's own (e.g. through
// internal/faultinject), the audit log, and Deps fields.
type fixtureOpts struct {
	store *keystore.Store
	deps  func(*Deps)
	// auditFile overrides the audit log path (default: a file in a temp dir).
	auditFile string
	// auditSync is the audit fsync policy (default none: tests need no
	// durability; benchmarks measure both).
	auditSync audit.SyncPolicy
	// auditSyncFile replaces the audit log's fdatasync (fault injection).
	auditSyncFile func(*os.File) error
	// auditFlush is the audit flush interval (audit.sync: begin).
	auditFlush time.Duration
	// tls adjusts the server's TLS config (more client CAs, a CRL check).
	tls func(*tls.Config)
	// tcp serves on a real socket (127.0.0.1) instead of bufconn.
	tcp bool
	// auditMirror receives the audit lines the log mirrors (default none).
	auditMirror *slog.Logger
}

var clientsConf = []config.Client{
	{Identity: "client", Roles: []string{"client"}, Keys: []string{"client-sign"}},
	{Identity: "wide-client", Roles: []string{"client"}, Keys: []string{"*"}},
	{Identity: "gateway", Roles: []string{"gateway"}, Keys: []string{"gateway-decrypt"}},
	{Identity: "officer", Roles: []string{"officer"}, Keys: []string{"*"}},
	{Identity: "officer-2", Roles: []string{"officer"}, Keys: []string{"*"}},
}

// dualControl in the fixture: aliases "dual-*" need a second officer for
// the default operations (create, set-primary, destroy).
var dualControl = config.DualControl{Aliases: []string{"dual-*"}, Operations: []string{config.OpCreate, config.OpSetPrimary, config.OpDestroy}, RequestTTL: time.Hour}

func newFixture(t *testing.T) *fixture { return newFixtureTB(t) }

func newFixtureTB(t testing.TB) *fixture { return newFixtureOpts(t, fixtureOpts{}) }

func newFixtureOpts(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	now := time.Now()
	ca, err := devca.NewCA("test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	store := o.store
	if store == nil {
		store = softhsm.NewToken(t)
	}
	ctx := context.Background()
	for _, k := range []struct {
		alias string
		p     keystore.Purpose
		a     keystore.Algorithm
		kind  devca.Kind
	}{
		{"client-sign", keystore.PurposeSign, keystore.ECP256, devca.CMSSign},
		{"gateway-decrypt", keystore.PurposeDecrypt, keystore.RSA2048, devca.CMSDecrypt},
		{"pending", keystore.PurposeSign, keystore.ECP256, 0},
		{"tsa", keystore.PurposeTimestamp, keystore.ECP256, devca.TSA},
	} {
		v, err := store.CreateKey(ctx, k.alias, k.p, k.a)
		if err != nil {
			t.Fatalf("create %s: %v", k.alias, err)
		}
		if k.alias == "pending" {
			continue
		}
		cert, err := ca.Issue(k.alias, k.kind, v.Public, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.ImportCertificate(ctx, k.alias, v.Version, []*x509.Certificate{cert, ca.Cert}); err != nil {
			t.Fatalf("import %s: %v", k.alias, err)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	engine, err := policy.NewEngine("test",
		&policy.Policy{Name: "test", Anchors: []*x509.Certificate{ca.Cert}, Revocation: policy.RevocationOff},
		&policy.Policy{Name: "strict", Anchors: []*x509.Certificate{ca.Cert}, Revocation: policy.RevocationRequire, AllowOverrides: policy.OverrideNames})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := tsa.New(tsa.Config{
		Key:            TSAKey(store, "tsa"),
		Policy:         asn1.ObjectIdentifier{1, 2, 3, 4, 1},
		Accuracy:       time.Second,
		IncludeTSAName: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := authority.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if o.auditFile == "" {
		o.auditFile = filepath.Join(t.TempDir(), "audit.log")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := &fakeClock{}
	if o.auditSync == "" {
		o.auditSync = audit.SyncNone
	}
	al, err := audit.Open(audit.Options{File: o.auditFile, Sync: o.auditSync, Now: clock.Now, SyncFile: o.auditSyncFile, FlushInterval: o.auditFlush, Mirror: o.auditMirror})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	deps := Deps{
		TSA:             authority,
		Keys:            store,
		KeyAdmin:        store,
		Requests:        store,
		Validator:       engine,
		Policies:        engine,
		Auth:            authz.New(clientsConf),
		Audit:           al,
		KeyPolicy:       config.Keys{ExpiryWarningDays: 30, DualControl: dualControl},
		Metrics:         metrics.New(store.PoolStats),
		Log:             log,
		Now:             clock.Now,
		MaxMessageBytes: 1 << 20,
	}
	if o.deps != nil {
		o.deps(&deps)
	}
	srv := New(deps)
	srvCert := tlsCert(t, ca, "localhost", devca.TLSServer)
	tc := &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	if o.tls != nil {
		o.tls(tc)
	}
	g := srv.GRPC(tc)
	srv.SetServing(true)
	lis := bufconn.Listen(1 << 20)
	var addr string
	if o.tcp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		go func() { _ = g.Serve(ln) }()
	} else {
		go func() { _ = g.Serve(lis) }()
	}
	t.Cleanup(g.Stop)
	return &fixture{ca: ca, lis: lis, store: store, srv: srv, auditFile: o.auditFile, clock: clock, addr: addr}
}

func tlsCert(t testing.TB, ca *devca.CA, cn string, kind devca.Kind) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(cn, kind, key.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// dial connects as identity cn (a certificate from the fixture's CA).
func (f *fixture) dial(t testing.TB, cn string, extra ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	tc := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{tlsCert(t, f.ca, cn, devca.TLSClient)}}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	target := "passthrough:///bufnet"
	if f.addr != "" {
		target = f.addr
	} else {
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return f.lis.DialContext(ctx) }))
	}
	cc, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAuthorizationMatrix calls every RPC in the RPC table (internal/rpctable) as every role:
// allowed calls succeed (or fail for a reason other than authorisation),
// the others are PermissionDenied and leave a "denied" line in the audit log.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	data := []byte("<PRIHL/>")
	// Keys the write calls act on; each call is a no-op or idempotent for
	// the one role allowed to make it, so the order of calls is free.
	for _, alias := range []string{"rot", "imp", "dst"} {
		if _, err := f.store.CreateKey(ctx, alias, keystore.PurposeSign, keystore.ECP256); err != nil {
			t.Fatal(err)
		}
	}
	imp, _ := f.store.GetKey(ctx, "imp")
	impCert, err := f.ca.Issue("imp", devca.CMSSign, imp.Versions[0].Public, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CreateKey(ctx, "dual-x", keystore.PurposeSign, keystore.ECP256); err != nil {
		t.Fatal(err)
	}
	// officer-2 asks to destroy dual-x version 1; officer approves in the matrix.
	pend, err := pecetv1.NewKeyServiceClient(f.dial(t, "officer-2")).DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "dual-x", Version: 1})
	if err != nil || pend.GetPendingRequest().GetId() == "" {
		t.Fatalf("dual-control request: %v %v", pend, err)
	}
	reqID := pend.GetPendingRequest().GetId()

	type call func(ctx context.Context, cc *grpc.ClientConn, who string) error
	keys := func(cc *grpc.ClientConn) pecetv1.KeyServiceClient { return pecetv1.NewKeyServiceClient(cc) }
	calls := map[string]call{
		pecetv1.SignService_Sign_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
			return err
		},
		pecetv1.SignService_Verify_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{Signature: []byte{0x30, 0x00}})
			return err
		},
		pecetv1.SignService_Augment_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewSignServiceClient(cc).Augment(ctx, &pecetv1.AugmentRequest{Signature: []byte{0x30, 0x00}, Level: pecetv1.CadesLevel_CADES_LEVEL_T})
			return err
		},
		pecetv1.KeyService_ListKeys_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).ListKeys(ctx, &pecetv1.ListKeysRequest{})
			return err
		},
		pecetv1.KeyService_GetKey_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).GetKey(ctx, &pecetv1.GetKeyRequest{Alias: "client-sign"})
			return err
		},
		pecetv1.KeyService_CreateKey_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, who string) error {
			_, err := keys(cc).CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "new-" + who, Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256})
			return err
		},
		pecetv1.KeyService_RotateKey_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: "rot"})
			return err
		},
		pecetv1.KeyService_CreateCSR_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).CreateCSR(ctx, &pecetv1.CreateCSRRequest{Alias: "client-sign", Version: 1, Subject: "CN=client-sign,C=CZ"})
			return err
		},
		pecetv1.KeyService_ImportCertificate_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "imp", Version: 1, Chain: [][]byte{impCert.Raw, f.ca.Cert.Raw}})
			return err
		},
		pecetv1.KeyService_SetPrimaryVersion_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: "client-sign", Version: 1})
			return err
		},
		pecetv1.KeyService_DisableKeyVersion_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			// Disabling the primary is refused by state, not by role.
			_, err := keys(cc).DisableKeyVersion(ctx, &pecetv1.DisableKeyVersionRequest{Alias: "client-sign", Version: 1})
			return err
		},
		pecetv1.KeyService_EnableKeyVersion_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).EnableKeyVersion(ctx, &pecetv1.EnableKeyVersionRequest{Alias: "client-sign", Version: 1})
			return err
		},
		pecetv1.KeyService_DestroyKeyVersion_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "dst", Version: 1})
			return err
		},
		pecetv1.KeyService_ListRequests_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).ListRequests(ctx, &pecetv1.ListRequestsRequest{})
			return err
		},
		pecetv1.KeyService_ApproveRequest_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := keys(cc).ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: reqID})
			return err
		},
		pecetv1.PolicyService_ValidateCertificate_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewPolicyServiceClient(cc).ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{Chain: [][]byte{{0x30, 0x00}}})
			return err
		},
		pecetv1.PolicyService_ListPolicies_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewPolicyServiceClient(cc).ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
			return err
		},
		pecetv1.EnvelopeService_Encrypt_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewEnvelopeServiceClient(cc).Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientCertificates: [][]byte{{0x30, 0x00}}})
			return err
		},
		pecetv1.EnvelopeService_Decrypt_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewEnvelopeServiceClient(cc).Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: []byte{0x30, 0x00}})
			return err
		},
		pecetv1.TimestampService_Timestamp_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewTimestampServiceClient(cc).Timestamp(ctx, &pecetv1.TimestampRequest{Digest: make([]byte, 32)})
			return err
		},
		pecetv1.EnvelopeService_EncryptStream_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			st, err := pecetv1.NewEnvelopeServiceClient(cc).EncryptStream(ctx)
			if err != nil {
				return err
			}
			return drainStream(st, &pecetv1.EncryptStreamRequest{Data: data, RecipientCertificates: [][]byte{{0x30, 0x00}}}, new(pecetv1.EncryptStreamResponse))
		},
		pecetv1.EnvelopeService_DecryptStream_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			st, err := pecetv1.NewEnvelopeServiceClient(cc).DecryptStream(ctx)
			if err != nil {
				return err
			}
			return drainStream(st, &pecetv1.DecryptStreamRequest{Enveloped: []byte{0x30, 0x00}}, new(pecetv1.DecryptStreamResponse))
		},
		// The batch forms (batch.go): a bad item fails alone, so an
		// allowed call is OK.
		pecetv1.SignService_SignDigests_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewSignServiceClient(cc).SignDigests(ctx, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: [][]byte{make([]byte, 32)}})
			return err
		},
		pecetv1.SignService_SignDigestsStream_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			st, err := pecetv1.NewSignServiceClient(cc).SignDigestsStream(ctx)
			if err != nil {
				return err
			}
			return drainStream(st, &pecetv1.SignDigestsRequest{Key: "client-sign", Digests: [][]byte{make([]byte, 32)}}, new(pecetv1.SignDigestsResponse))
		},
		pecetv1.EnvelopeService_DecryptBatch_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewEnvelopeServiceClient(cc).DecryptBatch(ctx, &pecetv1.DecryptBatchRequest{Enveloped: [][]byte{{0x30, 0x00}}})
			return err
		},
		pecetv1.TimestampService_TimestampBatch_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewTimestampServiceClient(cc).TimestampBatch(ctx, &pecetv1.TimestampBatchRequest{Requests: []*pecetv1.TimestampRequest{{Digest: make([]byte, 32)}}})
			return err
		},
		// The archive calls with input refused before any work:
		// InvalidArgument proves authorisation passed.
		pecetv1.ArchiveService_Seal_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			st, err := pecetv1.NewArchiveServiceClient(cc).Seal(ctx, &pecetv1.SealRequest{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		},
		pecetv1.ArchiveService_SealStream_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			st, err := pecetv1.NewArchiveServiceClient(cc).SealStream(ctx)
			if err != nil {
				return err
			}
			return drainStream(st, &pecetv1.SealStreamRequest{}, new(pecetv1.SealResponse))
		},
		pecetv1.ArchiveService_Renew_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			st, err := pecetv1.NewArchiveServiceClient(cc).Renew(ctx)
			if err != nil {
				return err
			}
			return drainStream(st, &pecetv1.RenewRequest{}, new(pecetv1.RenewResponse))
		},
		pecetv1.ArchiveService_VerifyRecord_FullMethodName: func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pecetv1.NewArchiveServiceClient(cc).VerifyRecord(ctx, &pecetv1.VerifyRecordRequest{})
			return err
		},
	}
	// Every method with roles in the RPC table has a call here, and
	// nothing else.
	n := 0
	for _, r := range rpctable.Rows() {
		if r.Open {
			continue
		}
		n++
		if calls[r.Method] == nil {
			t.Errorf("%s is in the RPC table but not in the matrix", r.Method)
		}
	}
	if len(calls) != n {
		t.Errorf("matrix has %d calls, the RPC table %d methods with roles", len(calls), n)
	}
	// What each allowed role gets when authorisation lets it through;
	// everything not listed is PermissionDenied.
	allowed := map[string]map[string]codes.Code{
		"client": {
			pecetv1.SignService_Sign_FullMethodName: codes.OK, pecetv1.SignService_Verify_FullMethodName: codes.InvalidArgument,
			pecetv1.KeyService_ListKeys_FullMethodName: codes.OK, pecetv1.KeyService_GetKey_FullMethodName: codes.OK,
			// A malformed chain: InvalidArgument proves authorisation passed.
			// A certificate that cannot be parsed is a verdict
			// (FORMAT_FAILURE): OK proves authorisation passed.
			pecetv1.PolicyService_ValidateCertificate_FullMethodName: codes.OK, pecetv1.PolicyService_ListPolicies_FullMethodName: codes.OK,
			// Malformed recipient certificate / CMS: InvalidArgument proves
			// authorisation passed.
			pecetv1.EnvelopeService_Encrypt_FullMethodName:       codes.InvalidArgument,
			pecetv1.EnvelopeService_EncryptStream_FullMethodName: codes.InvalidArgument,
			pecetv1.TimestampService_Timestamp_FullMethodName:    codes.OK,
			pecetv1.SignService_SignDigests_FullMethodName:       codes.OK, pecetv1.SignService_SignDigestsStream_FullMethodName: codes.OK,
			pecetv1.TimestampService_TimestampBatch_FullMethodName: codes.OK,
			pecetv1.SignService_Augment_FullMethodName:             codes.InvalidArgument, // malformed CMS
			pecetv1.ArchiveService_Seal_FullMethodName:             codes.InvalidArgument,
			pecetv1.ArchiveService_SealStream_FullMethodName:       codes.InvalidArgument,
			pecetv1.ArchiveService_Renew_FullMethodName:            codes.InvalidArgument,
			pecetv1.ArchiveService_VerifyRecord_FullMethodName:     codes.InvalidArgument,
		},
		"gateway": {
			// A malformed signature: InvalidArgument proves authorisation passed.
			pecetv1.SignService_Verify_FullMethodName:  codes.InvalidArgument,
			pecetv1.KeyService_ListKeys_FullMethodName: codes.OK,
			// client-sign is not the gateway's key: hidden as not found.
			pecetv1.KeyService_GetKey_FullMethodName:                 codes.NotFound,
			pecetv1.PolicyService_ValidateCertificate_FullMethodName: codes.OK, // FORMAT_FAILURE verdict
			pecetv1.PolicyService_ListPolicies_FullMethodName:        codes.OK,
			pecetv1.EnvelopeService_Decrypt_FullMethodName:           codes.InvalidArgument,
			pecetv1.EnvelopeService_DecryptStream_FullMethodName:     codes.InvalidArgument,
			pecetv1.TimestampService_Timestamp_FullMethodName:        codes.OK,
			pecetv1.EnvelopeService_DecryptBatch_FullMethodName:      codes.OK,
			pecetv1.TimestampService_TimestampBatch_FullMethodName:   codes.OK,
			pecetv1.SignService_Augment_FullMethodName:               codes.InvalidArgument,
			pecetv1.ArchiveService_Seal_FullMethodName:               codes.InvalidArgument,
			pecetv1.ArchiveService_SealStream_FullMethodName:         codes.InvalidArgument,
			pecetv1.ArchiveService_Renew_FullMethodName:              codes.InvalidArgument,
			pecetv1.ArchiveService_VerifyRecord_FullMethodName:       codes.InvalidArgument,
		},
		"officer": {
			pecetv1.KeyService_ListKeys_FullMethodName: codes.OK, pecetv1.KeyService_GetKey_FullMethodName: codes.OK,
			pecetv1.KeyService_CreateKey_FullMethodName: codes.OK, pecetv1.KeyService_RotateKey_FullMethodName: codes.OK,
			pecetv1.KeyService_CreateCSR_FullMethodName: codes.OK, pecetv1.KeyService_ImportCertificate_FullMethodName: codes.OK,
			pecetv1.KeyService_SetPrimaryVersion_FullMethodName: codes.OK, pecetv1.KeyService_DisableKeyVersion_FullMethodName: codes.FailedPrecondition,
			pecetv1.KeyService_EnableKeyVersion_FullMethodName: codes.OK, pecetv1.KeyService_DestroyKeyVersion_FullMethodName: codes.OK,
			pecetv1.KeyService_ListRequests_FullMethodName: codes.OK, pecetv1.KeyService_ApproveRequest_FullMethodName: codes.OK,
			pecetv1.PolicyService_ListPolicies_FullMethodName: codes.OK,
		},
		"stranger": {},
	}
	denied := map[string]bool{}
	for who, codesFor := range allowed {
		cc := f.dial(t, who)
		for rpc, do := range calls {
			want, ok := codesFor[rpc]
			if !ok {
				want = codes.PermissionDenied
				denied[who+" "+rpc] = true
			}
			t.Run(who+rpc, func(t *testing.T) {
				if got := status.Convert(do(ctxT(t), cc, who)); got.Code() != want {
					t.Fatalf("got %s (%s), want %s", got.Code(), got.Message(), want)
				}
			})
		}
	}
	// Every denial is in the audit log, as denied, and the chain holds.
	events := auditEvents(t, f.auditFile)
	for _, e := range events {
		if e.Outcome == audit.OutcomeDenied && e.Code == codes.PermissionDenied.String() {
			delete(denied, e.Caller+" "+e.RPC)
		}
	}
	for k := range denied {
		t.Errorf("denied call not audited as denied: %s", k)
	}
}

// drainStream sends one request on a client stream, half-closes, and
// reads the responses until the stream ends: nil for OK, else its status.
func drainStream(st grpc.ClientStream, req, resp any) error {
	if err := st.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		if err := st.RecvMsg(resp); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// auditEvents verifies the fixture's audit log and returns its events.
func auditEvents(t *testing.T, path string) []audit.Event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(audit.File{Name: path, R: bytes.NewReader(b)}); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	var out []audit.Event
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		e, _, err := audit.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestHealthIsOpen(t *testing.T) {
	f := newFixture(t)
	resp, err := healthpb.NewHealthClient(f.dial(t, "stranger")).Check(ctxT(t), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
}

func TestSignErrors(t *testing.T) {
	f := newFixture(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "wide-client"))
	d32 := make([]byte, 32)
	cases := []struct {
		name string
		req  *pecetv1.SignRequest
		code codes.Code
	}{
		{"no key", &pecetv1.SignRequest{Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}, codes.InvalidArgument},
		{"no input", &pecetv1.SignRequest{Key: "client-sign"}, codes.InvalidArgument},
		{"empty data", &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: nil}}, codes.InvalidArgument},
		{"unknown hash", &pecetv1.SignRequest{Key: "client-sign", Hash: 99, Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}, codes.InvalidArgument},
		{"digest too short", &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Digest{Digest: d32[:20]}}, codes.InvalidArgument},
		{"digest attached", &pecetv1.SignRequest{Key: "client-sign", Attached: true, Input: &pecetv1.SignRequest_Digest{Digest: d32}}, codes.InvalidArgument},
		{"unknown alias", &pecetv1.SignRequest{Key: "nope", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}, codes.NotFound},
		{"decrypt key", &pecetv1.SignRequest{Key: "gateway-decrypt", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}, codes.FailedPrecondition},
		{"pending key", &pecetv1.SignRequest{Key: "pending", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}, codes.FailedPrecondition},
		{"unknown version", &pecetv1.SignRequest{Key: "client-sign", Version: 7, Input: &pecetv1.SignRequest_Data{Data: []byte("x")}}, codes.NotFound},
		{"over the message limit", &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: make([]byte, 2<<20)}}, codes.ResourceExhausted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := sc.Sign(ctxT(t), c.req)
			st := status.Convert(err)
			if st.Code() != c.code {
				t.Fatalf("got %s (%s), want %s", st.Code(), st.Message(), c.code)
			}
			if st.Message() == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	f := newFixture(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	data := []byte("<PRIHL><employee/></PRIHL>")
	sum := sha256.Sum256(data)
	for _, c := range []struct {
		name string
		req  *pecetv1.SignRequest
		vreq func(sig []byte) *pecetv1.VerifyRequest
	}{
		{"detached", &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}},
			func(sig []byte) *pecetv1.VerifyRequest {
				return &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: data}}
			}},
		{"attached", &pecetv1.SignRequest{Key: "client-sign", Attached: true, Input: &pecetv1.SignRequest_Data{Data: data}},
			func(sig []byte) *pecetv1.VerifyRequest { return &pecetv1.VerifyRequest{Signature: sig} }},
		{"client digest", &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Digest{Digest: sum[:]}},
			func(sig []byte) *pecetv1.VerifyRequest {
				return &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_ContentDigest{ContentDigest: sum[:]}}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := sc.Sign(ctxT(t), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetKey() != "client-sign" || resp.GetVersion() != 1 {
				t.Errorf("key version: %s %d", resp.GetKey(), resp.GetVersion())
			}
			vr, err := sc.Verify(ctxT(t), c.vreq(resp.GetSignature()))
			if err != nil {
				t.Fatal(err)
			}
			if v := vr.GetVerdict(); v.GetStatus() != pecetv1.Verdict_VALID || v.GetSubject() == "" || v.GetSigningTime() == nil {
				t.Fatalf("verdict: %v", v)
			}
		})
	}
}

// TestConcurrentSigns: hundreds of concurrent signs through the service,
// every signature valid (run with -race).
func TestConcurrentSigns(t *testing.T) {
	f := newFixture(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte{byte(i), byte(i >> 8), 'x'}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
			if err != nil {
				errs <- err
				return
			}
			vr, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: resp.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}})
			if err != nil {
				errs <- err
				return
			}
			if vr.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
				errs <- status.Errorf(codes.Internal, "verdict %v", vr.GetVerdict())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRSACheckEvery: RSA self-checks are all done unless the config says
// the token checks its own CRT results (token.rsa_check_every).
func TestRSACheckEvery(t *testing.T) {
	for _, tt := range []struct {
		every int
		want  uint64 // 0: no sampler, every signature verified
	}{{0, 0}, {1, 0}, {64, 64}} {
		s := New(Deps{RSACheckEvery: tt.every})
		got := uint64(0)
		if s.rsaCheck != nil {
			got = s.rsaCheck.Every
		}
		if got != tt.want {
			t.Errorf("RSACheckEvery %d: sampler every %d, want %d", tt.every, got, tt.want)
		}
	}
}
