package daemon

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
)

// TestClientAuthCRLAudited: with grpc.tls.client_crl, pecetd's TLS config
// refuses a revoked client certificate in a real handshake and writes an
// audit "denied" line naming it; a good certificate passes. A client_ca
// with two CAs and an unpinned client stops the start.
func TestClientAuthCRLAudited(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := devca.NewCA("clients CA", now)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cert, err := ca.Issue(cn, devca.TLSClient, key.Public(), now)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	}
	revoked, good := issue("gateway"), issue("gateway")
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: revoked.Leaf.SerialNumber, RevocationTime: now.Add(-time.Minute)}},
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, crlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "clients.crl")
	if err := devca.WriteCerts(caFile, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crlFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	auditFile := filepath.Join(dir, "audit.log")
	al, err := audit.Open(audit.Options{File: auditFile, Sync: audit.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	log := slog.New(slog.DiscardHandler)
	clients := []config.Client{{Identity: "gateway", Roles: []string{"gateway"}}}

	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert, err := ca.Issue("localhost", devca.TLSServer, srvKey.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tc := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	if _, err := clientAuth(config.TLS{ClientCA: caFile, ClientCRL: crlFile}, clients); err != nil {
		t.Fatal(err)
	}
	if err := hookClientCRL(config.TLS{ClientCA: caFile, ClientCRL: crlFile}, tc, al, log); err != nil {
		t.Fatal(err)
	}
	if tc.VerifyConnection == nil {
		t.Fatal("no CRL check installed")
	}

	handshake := func(cert tls.Certificate) error {
		c, s := net.Pipe()
		defer c.Close()
		defer s.Close()
		done := make(chan error, 1)
		go func() { done <- tls.Server(s, tc).Handshake() }()
		cc := tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "localhost", Certificates: []tls.Certificate{cert}})
		_ = cc.Handshake()
		c.Close()
		return <-done
	}
	if err := handshake(good); err != nil {
		t.Fatalf("good certificate: %v", err)
	}
	if err := handshake(revoked); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked certificate: %v", err)
	}
	b, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		e, _, err := audit.ParseLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if e.Phase == audit.PhaseDenied && e.Caller == "gateway" && e.RPC == "TLS handshake" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no denied line for the revoked certificate:\n%s", b)
	}

	// Two client CAs, an unpinned client: refused at start.
	other, _ := devca.NewCA("other CA", now)
	two := filepath.Join(dir, "two.pem")
	if err := devca.WriteCerts(two, ca.Cert, other.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := clientAuth(config.TLS{ClientCA: two}, clients); err == nil || !strings.Contains(err.Error(), "holds 2 certificates") {
		t.Fatalf("two CAs, no pin: %v", err)
	}
}
