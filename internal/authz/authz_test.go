package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
)

const listPolicies = pecetv1.PolicyService_ListPolicies_FullMethodName

func newCA(t *testing.T, name string) *devca.CA {
	t.Helper()
	ca, err := devca.NewCA(name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// clientCert is a TLS client certificate for cn with key, from ca.
func clientCert(t *testing.T, ca *devca.CA, cn string, key crypto.Signer) tls.Certificate {
	t.Helper()
	cert, err := ca.Issue(cn, devca.TLSClient, key.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// mtlsServer serves gRPC health on loopback with mTLS (client CAs cas),
// every call authorised by a as ListPolicies; hook adjusts the TLS config.
func mtlsServer(t *testing.T, a *Authorizer, serverCA *devca.CA, cas []*x509.Certificate, hook func(*tls.Config)) string {
	t.Helper()
	key := newKey(t)
	cert, err := serverCA.Issue("localhost", devca.TLSServer, key.Public(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	if hook != nil {
		hook(tc)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if _, err := a.Authorize(ctx, listPolicies); err != nil {
				if errors.Is(err, ErrDenied) {
					return nil, status.Error(codes.PermissionDenied, err.Error())
				}
				return nil, status.Error(codes.Unauthenticated, err.Error())
			}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(g, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// call makes one authorised call as cert and returns its error.
func call(t *testing.T, addr string, serverCA *devca.CA, cert tls.Certificate) error {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert},
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestPinnedIdentities: two CAs trusted for mTLS issue certificates with
// the same CNs; each client is pinned to its CA (by certificate file, by
// SPKI hash, or by the default single client CA) and optionally to its key.
// A certificate whose name matches but whose issuer or key does not is
// PermissionDenied. Before pinning, the name alone decided.
func TestPinnedIdentities(t *testing.T) {
	caA, caB := newCA(t, "clients CA"), newCA(t, "other CA")
	dir := t.TempDir()
	caAFile := filepath.Join(dir, "clients-ca.pem")
	if err := devca.WriteCerts(caAFile, caA.Cert); err != nil {
		t.Fatal(err)
	}
	pinnedKey := newKey(t)
	pinnedCert := clientCert(t, caA, "client", pinnedKey)
	clients := []config.Client{
		{Identity: "gateway", Roles: []string{RoleGateway}, IssuerSPKISHA256: SPKISHA256(caA.Cert)},
		{Identity: "officer", Roles: []string{RoleOfficer}, Issuer: caAFile},
		{Identity: "client", Roles: []string{RoleClient}, Issuer: caAFile, KeySPKISHA256: strings.ToUpper(SPKISHA256(pinnedCert.Leaf))},
	}
	a, err := Load(clients, []*x509.Certificate{caA.Cert, caB.Cert})
	if err != nil {
		t.Fatal(err)
	}
	addr := mtlsServer(t, a, caA, []*x509.Certificate{caA.Cert, caB.Cert}, nil)

	tests := []struct {
		name string
		cert tls.Certificate
		want codes.Code
	}{
		{"gateway from its CA", clientCert(t, caA, "gateway", newKey(t)), codes.OK},
		{"gateway from the other CA", clientCert(t, caB, "gateway", newKey(t)), codes.PermissionDenied},
		{"officer from its CA (issuer file)", clientCert(t, caA, "officer", newKey(t)), codes.OK},
		{"officer from the other CA", clientCert(t, caB, "officer", newKey(t)), codes.PermissionDenied},
		{"client with the pinned key", pinnedCert, codes.OK},
		{"client, its CA, another key", clientCert(t, caA, "client", newKey(t)), codes.PermissionDenied},
		{"client from the other CA with the pinned key", clientCert(t, caB, "client", pinnedKey), codes.PermissionDenied},
		{"unknown name", clientCert(t, caA, "nobody", newKey(t)), codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(call(t, addr, caA, tc.cert)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLoadPins: the default pin is the single client CA; several client
// CAs need a pin per client; a pin that does not load is an error at Load
// and denies the client under New.
func TestLoadPins(t *testing.T) {
	caA, caB := newCA(t, "clients CA"), newCA(t, "other CA")
	dir := t.TempDir()
	leafFile := filepath.Join(dir, "leaf.pem")
	leaf := clientCert(t, caA, "x", newKey(t))
	if err := devca.WriteCerts(leafFile, leaf.Leaf); err != nil {
		t.Fatal(err)
	}
	gw := func(c config.Client) []config.Client {
		c.Identity, c.Roles = "gateway", []string{RoleGateway}
		return []config.Client{c}
	}
	tests := []struct {
		name    string
		clients []config.Client
		cas     []*x509.Certificate
		wantErr string
	}{
		{"one client CA, no pin", gw(config.Client{}), []*x509.Certificate{caA.Cert}, ""},
		{"two client CAs, no pin", gw(config.Client{}), []*x509.Certificate{caA.Cert, caB.Cert}, "holds 2 certificates"},
		{"two client CAs, pinned", gw(config.Client{IssuerSPKISHA256: SPKISHA256(caB.Cert)}), []*x509.Certificate{caA.Cert, caB.Cert}, ""},
		{"issuer file missing", gw(config.Client{Issuer: filepath.Join(dir, "none.pem")}), []*x509.Certificate{caA.Cert}, "no such file"},
		{"issuer not a CA", gw(config.Client{Issuer: leafFile}), []*x509.Certificate{caA.Cert}, "exactly one CA certificate"},
		{"bad key hash", gw(config.Client{KeySPKISHA256: "abc"}), []*x509.Certificate{caA.Cert}, "not a SHA-256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.clients, tc.cas)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}

	// Under New a pin that does not load denies the client (fail closed).
	a := New(gw(config.Client{Issuer: filepath.Join(dir, "none.pem")}))
	addr := mtlsServer(t, a, caA, []*x509.Certificate{caA.Cert}, nil)
	if got := status.Code(call(t, addr, caA, clientCert(t, caA, "gateway", newKey(t)))); got != codes.PermissionDenied {
		t.Fatalf("broken pin under New: %v, want PermissionDenied", got)
	}
}

// writeCRL writes a PEM CRL by ca listing serials, with nextUpdate next.
func writeCRL(t *testing.T, path string, ca *devca.CA, next time.Time, revoked ...*x509.Certificate) {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big1(), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: next, RevokedCertificateEntries: entries,
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pemCRL(der), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClientCRL: through real mTLS, a client certificate on its CA's CRL
// fails the handshake (and is reported for the audit log), others pass; a
// client of a CA without a CRL in the file is not checked; a new CRL is
// picked up when the file changes; a stale CRL still revokes; a CRL that
// names a client CA but is signed by another key is refused at start.
func TestClientCRL(t *testing.T) {
	caA, caB := newCA(t, "clients CA"), newCA(t, "other CA")
	dir := t.TempDir()
	crlFile := filepath.Join(dir, "clients.crl")
	revoked := clientCert(t, caA, "gateway", newKey(t))
	good := clientCert(t, caA, "gateway", newKey(t))
	later := clientCert(t, caA, "gateway", newKey(t))
	fromB := clientCert(t, caB, "officer", newKey(t))
	// Stale on purpose: past nextUpdate, its entries still count.
	writeCRL(t, crlFile, caA, time.Now().Add(-time.Minute), revoked.Leaf)

	cas := []*x509.Certificate{caA.Cert, caB.Cert}
	var denied []string
	crl, err := LoadCRL(crlFile, cas, nil, func(id string, err error) { denied = append(denied, id+": "+err.Error()) })
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	crl.now = func() time.Time { return clock }
	a := New([]config.Client{
		{Identity: "gateway", Roles: []string{RoleGateway}},
		{Identity: "officer", Roles: []string{RoleOfficer}},
	})
	addr := mtlsServer(t, a, caA, cas, func(tc *tls.Config) { tc.VerifyConnection = crl.VerifyConnection })

	tests := []struct {
		name    string
		cert    tls.Certificate
		refused bool
	}{
		{"revoked", revoked, true},
		{"not revoked", good, false},
		{"issuer without a CRL", fromB, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, addr, caA, tc.cert)
			if tc.refused != (err != nil) || tc.refused && status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v, refused want %v", err, tc.refused)
			}
		})
	}
	if len(denied) != 1 || !strings.Contains(denied[0], "gateway") || !strings.Contains(denied[0], "revoked") {
		t.Fatalf("reported denials %q, want the revoked gateway once", denied)
	}

	// A new CRL revoking another certificate: picked up once the file
	// changed and the recheck interval passed.
	writeCRL(t, crlFile, caA, time.Now().Add(time.Hour), revoked.Leaf, later.Leaf)
	clock = clock.Add(crlRecheck)
	if err := call(t, addr, caA, later); err == nil {
		t.Fatal("certificate revoked by the reloaded CRL was accepted")
	}
	// A broken file keeps the last good CRL.
	os.WriteFile(crlFile, []byte("garbage"), 0o600)
	clock = clock.Add(crlRecheck)
	if err := call(t, addr, caA, later); err == nil {
		t.Fatal("a broken CRL file dropped the revocations")
	}
	if err := call(t, addr, caA, good); err != nil {
		t.Fatalf("good certificate after a broken reload: %v", err)
	}

	// A CRL naming caA, signed by an impostor with caA's name: refused.
	imp := &devca.CA{Cert: caA.Cert, Key: newKey(t)}
	forged := filepath.Join(dir, "forged.crl")
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big1(), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, caA.Cert, imp.Key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(forged, pemCRL(der), 0o600)
	if _, err := LoadCRL(forged, cas, nil, nil); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("forged CRL: %v", err)
	}
	// Not a CRL at all.
	if _, err := LoadCRL(filepath.Join(dir, "none.crl"), cas, nil, nil); err == nil {
		t.Fatal("missing CRL file accepted")
	}
}

func big1() *big.Int { return big.NewInt(1) }

func pemCRL(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}) }
