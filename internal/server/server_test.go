package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"io"
	"log/slog"
	"net"
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
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/softhsm"
	"github.com/pecet-hsm/pecet/tsa"
)

// fixture is a server on a real SoftHSM token, reached over bufconn with
// real mTLS, and a CA that issues client identities.
type fixture struct {
	ca    *pki.CA
	lis   *bufconn.Listener
	store *keystore.Store
	srv   *Server
}

// fixtureOpts change the fixture: a store of the test's own (e.g. through
// keystore.Faults) and Deps fields.
type fixtureOpts struct {
	store *keystore.Store
	deps  func(*Deps)
}

var clientsConf = []config.Client{
	{Identity: "client", Roles: []string{"client"}, Keys: []string{"client-sign"}},
	{Identity: "wide-client", Roles: []string{"client"}, Keys: []string{"*"}},
	{Identity: "gateway", Roles: []string{"gateway"}, Keys: []string{"gateway-decrypt"}},
	{Identity: "officer", Roles: []string{"officer"}, Keys: []string{"*"}},
}

func newFixture(t *testing.T) *fixture { return newFixtureTB(t) }

func newFixtureTB(t testing.TB) *fixture { return newFixtureOpts(t, fixtureOpts{}) }

func newFixtureOpts(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	now := time.Now()
	ca, err := pki.NewCA("test CA", now)
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
		kind  pki.Kind
	}{
		{"client-sign", keystore.PurposeSign, keystore.ECP256, pki.CMSSign},
		{"gateway-decrypt", keystore.PurposeDecrypt, keystore.RSA2048, pki.CMSDecrypt},
		{"pending", keystore.PurposeSign, keystore.ECP256, 0},
		{"tsa", keystore.PurposeTimestamp, keystore.ECP256, pki.TSA},
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
		&policy.Policy{Name: "strict", Anchors: []*x509.Certificate{ca.Cert}, Revocation: policy.RevocationRequire})
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
	deps := Deps{
		TSA:             authority,
		Keys:            store,
		Validator:       engine,
		Policies:        engine,
		Auth:            authz.New(clientsConf),
		Metrics:         metrics.New(store.PoolStats),
		Log:             slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxMessageBytes: 1 << 20,
	}
	if o.deps != nil {
		o.deps(&deps)
	}
	srv := New(deps)
	srvCert := tlsCert(t, ca, "localhost", pki.TLSServer)
	g := srv.GRPC(&tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientCAs:    roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	srv.SetServing(true)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return &fixture{ca: ca, lis: lis, store: store, srv: srv}
}

func tlsCert(t testing.TB, ca *pki.CA, cn string, kind pki.Kind) tls.Certificate {
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
func (f *fixture) dial(t testing.TB, cn string) *grpc.ClientConn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	tc := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{tlsCert(t, f.ca, cn, pki.TLSClient)}}
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return f.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(tc)))
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

// TestAuthorizationMatrix calls every RPC as every role.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	data := []byte("<PRIHL/>")
	type call func(context.Context, *grpc.ClientConn) error
	calls := map[string]call{
		"Sign": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: data}})
			return err
		},
		"Verify": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewSignServiceClient(cc).Verify(ctx, &pecetv1.VerifyRequest{Signature: []byte{0x30, 0x00}})
			return err
		},
		"ListKeys": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewKeyServiceClient(cc).ListKeys(ctx, &pecetv1.ListKeysRequest{})
			return err
		},
		"GetKey": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewKeyServiceClient(cc).GetKey(ctx, &pecetv1.GetKeyRequest{Alias: "client-sign"})
			return err
		},
		"ValidateCertificate": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewPolicyServiceClient(cc).ValidateCertificate(ctx, &pecetv1.ValidateCertificateRequest{Chain: [][]byte{{0x30, 0x00}}})
			return err
		},
		"ListPolicies": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewPolicyServiceClient(cc).ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
			return err
		},
		"Encrypt": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewEnvelopeServiceClient(cc).Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientCertificates: [][]byte{{0x30, 0x00}}})
			return err
		},
		"Decrypt": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewEnvelopeServiceClient(cc).Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: []byte{0x30, 0x00}})
			return err
		},
		"Timestamp": func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewTimestampServiceClient(cc).Timestamp(ctx, &pecetv1.TimestampRequest{Digest: make([]byte, 32)})
			return err
		},
	}
	// Verify, Encrypt and Decrypt are called with malformed input: allowed
	// roles get InvalidArgument, proving they passed authorisation.
	want := map[string]map[string]codes.Code{
		"client": {"Sign": codes.OK, "Verify": codes.InvalidArgument, "ListKeys": codes.OK, "GetKey": codes.OK, "ValidateCertificate": codes.InvalidArgument, "ListPolicies": codes.OK,
			"Encrypt": codes.InvalidArgument, "Decrypt": codes.PermissionDenied, "Timestamp": codes.OK},
		"gateway": {"Sign": codes.PermissionDenied, "Verify": codes.InvalidArgument, "ListKeys": codes.OK, "GetKey": codes.NotFound, "ValidateCertificate": codes.InvalidArgument, "ListPolicies": codes.OK,
			"Encrypt": codes.PermissionDenied, "Decrypt": codes.InvalidArgument, "Timestamp": codes.OK},
		"officer": {"Sign": codes.PermissionDenied, "Verify": codes.PermissionDenied, "ListKeys": codes.OK, "GetKey": codes.OK, "ValidateCertificate": codes.PermissionDenied, "ListPolicies": codes.OK,
			"Encrypt": codes.PermissionDenied, "Decrypt": codes.PermissionDenied, "Timestamp": codes.PermissionDenied},
		"stranger": {"Sign": codes.PermissionDenied, "Verify": codes.PermissionDenied, "ListKeys": codes.PermissionDenied, "GetKey": codes.PermissionDenied, "ValidateCertificate": codes.PermissionDenied, "ListPolicies": codes.PermissionDenied,
			"Encrypt": codes.PermissionDenied, "Decrypt": codes.PermissionDenied, "Timestamp": codes.PermissionDenied},
	}
	for who, rpcs := range want {
		cc := f.dial(t, who)
		for rpc, code := range rpcs {
			t.Run(who+"/"+rpc, func(t *testing.T) {
				if got := status.Code(calls[rpc](ctxT(t), cc)); got != code {
					t.Fatalf("got %s, want %s", got, code)
				}
			})
		}
	}
	// Every RPC the server registers is in the role table (a new RPC
	// without roles would be denied to all: caught here).
	for _, m := range []string{"/pecet.v1.SignService/Sign", "/pecet.v1.SignService/Verify", "/pecet.v1.KeyService/ListKeys", "/pecet.v1.KeyService/GetKey",
		"/pecet.v1.PolicyService/ValidateCertificate", "/pecet.v1.PolicyService/ListPolicies",
		"/pecet.v1.EnvelopeService/Encrypt", "/pecet.v1.EnvelopeService/Decrypt", "/pecet.v1.TimestampService/Timestamp"} {
		if len(authz.AllowedRoles(m)) == 0 {
			t.Errorf("%s has no roles", m)
		}
	}
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
