package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
)

// dialFrom connects with a client certificate for cn issued by ca.
func (f *fixture) dialFrom(t *testing.T, ca *devca.CA, cn string) *grpc.ClientConn {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(f.ca.Cert)
	tc := &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{tlsCert(t, ca, cn, devca.TLSClient)}}
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return f.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestIdentityPinnedToIssuer: the server trusts two client CAs, and the
// other CA issues a certificate with the gateway's name. Pinned to the
// fixture's CA, the gateway's name from the other CA is PermissionDenied
// with a "denied" audit line naming it, and may not decrypt; the real
// gateway is served. Before pinning, the other CA's gateway was served.
func TestIdentityPinnedToIssuer(t *testing.T) {
	other, err := devca.NewCA("other CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOpts(t, fixtureOpts{tls: func(tc *tls.Config) { tc.ClientCAs.AddCert(other.Cert) }})
	var clients []config.Client
	for _, c := range clientsConf {
		c.IssuerSPKISHA256 = authz.SPKISHA256(f.ca.Cert)
		clients = append(clients, c)
	}
	auth, err := authz.Load(clients, []*x509.Certificate{f.ca.Cert, other.Cert})
	if err != nil {
		t.Fatal(err)
	}
	l := *f.srv.Current() // before any call
	l.Auth = auth
	f.srv.Swap(l)
	ctx := ctxT(t)

	tests := []struct {
		name string
		ca   *devca.CA
		want codes.Code
	}{
		{"gateway from its CA", f.ca, codes.OK},
		{"gateway from the other CA", other, codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc := f.dialFrom(t, tc.ca, "gateway")
			_, err := pecetv1.NewPolicyServiceClient(cc).ListPolicies(ctx, &pecetv1.ListPoliciesRequest{})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("ListPolicies: %v, want %v", err, tc.want)
			}
			_, err = pecetv1.NewEnvelopeServiceClient(cc).Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: []byte{0x30, 0x00}})
			if tc.want == codes.PermissionDenied && status.Code(err) != codes.PermissionDenied {
				t.Fatalf("Decrypt: %v, want PermissionDenied", err)
			}
		})
	}
	denied := 0
	for _, e := range auditEvents(t, f.auditFile) {
		if e.Phase == audit.PhaseDenied && e.Caller == "gateway" && e.Code == codes.PermissionDenied.String() {
			denied++
		}
	}
	if denied != 2 {
		t.Fatalf("%d denied audit lines for the other CA's gateway, want 2 (ListPolicies, Decrypt)", denied)
	}
}
