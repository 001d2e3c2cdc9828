package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pecet-hsm/pecet/internal/devca"
)

// clearEnv unsets the PECET_* variables for one test and runs it in an
// empty working directory, so that neither the caller's environment nor a
// .pecet-dev folder next to the test decides.
func clearEnv(t *testing.T) string {
	t.Helper()
	for _, v := range []string{"PECET_SERVER", "PECET_CERT", "PECET_KEY", "PECET_CA", "PECET_DEV_DIR"} {
		t.Setenv(v, "")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	return dir
}

func TestResolvePrecedence(t *testing.T) {
	cases := []struct {
		name   string
		opts   Options
		env    map[string]string
		dev    bool // make ./.pecet-dev with pecetd.addr
		want   Options
		noCred bool
	}{
		{
			name: "dev folder alone",
			dev:  true,
			want: Options{Server: "127.0.0.1:17443", Cert: ".pecet-dev/client.pem", Key: ".pecet-dev/client-key.pem", CA: ".pecet-dev/ca.pem"},
		},
		{
			name: "dev folder, officer role",
			dev:  true, opts: Options{Role: "officer"},
			want: Options{Server: "127.0.0.1:17443", Cert: ".pecet-dev/officer.pem", Key: ".pecet-dev/officer-key.pem", CA: ".pecet-dev/ca.pem"},
		},
		{
			name: "env beats dev folder",
			dev:  true,
			env:  map[string]string{"PECET_SERVER": "env:1", "PECET_CERT": "env.pem"},
			want: Options{Server: "env:1", Cert: "env.pem", Key: ".pecet-dev/client-key.pem", CA: ".pecet-dev/ca.pem"},
		},
		{
			name: "flags beat env",
			dev:  true,
			opts: Options{Server: "flag:1", Cert: "flag.pem"},
			env:  map[string]string{"PECET_SERVER": "env:1", "PECET_CERT": "env.pem", "PECET_KEY": "env-key.pem"},
			want: Options{Server: "flag:1", Cert: "flag.pem", Key: "env-key.pem", CA: ".pecet-dev/ca.pem"},
		},
		{
			name: "explicit files, no dev folder: default server",
			env:  map[string]string{"PECET_CERT": "c.pem", "PECET_KEY": "k.pem", "PECET_CA": "ca.pem"},
			want: Options{Server: DefaultServer, Cert: "c.pem", Key: "k.pem", CA: "ca.pem"},
		},
		{
			name: "PECET_DEV_DIR elsewhere",
			env:  map[string]string{"PECET_DEV_DIR": "/srv/dev"},
			want: Options{Server: DefaultServer, Cert: "/srv/dev/client.pem", Key: "/srv/dev/client-key.pem", CA: "/srv/dev/ca.pem"},
		},
		{name: "nothing at all", noCred: true},
		{name: "certificate without key", opts: Options{Cert: "c.pem", CA: "ca.pem"}, noCred: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			if c.dev {
				if err := os.Mkdir(DefaultDevDir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(DefaultDevDir, "pecetd.addr"), []byte(`{"grpc":"127.0.0.1:17443","http":"127.0.0.1:17080"}`), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.opts.Resolve()
			if c.noCred {
				if !errors.Is(err, ErrNoCredentials) {
					t.Fatalf("Resolve = %v, want ErrNoCredentials", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Server != c.want.Server || got.Cert != c.want.Cert || got.Key != c.want.Key || got.CA != c.want.CA {
				t.Fatalf("Resolve = %+v\nwant       %+v", got, c.want)
			}
			if got.MaxMessageBytes != DefaultMaxMessageBytes {
				t.Errorf("MaxMessageBytes = %d", got.MaxMessageBytes)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	dir := clearEnv(t)
	if _, err := Dial(Options{}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("Dial without credentials = %v", err)
	}
	if _, err := Dial(Options{Cert: "absent.pem", Key: "absent-key.pem", CA: "ca.pem"}); err == nil {
		t.Fatal("Dial with missing certificate files succeeded")
	}
	certs := newCerts(t, dir)
	bad := filepath.Join(dir, "not-a-ca.pem")
	if err := os.WriteFile(bad, []byte("no PEM here"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := certs.client
	o.CA = bad
	if _, err := Dial(o); err == nil {
		t.Fatal("Dial with a CA file without certificates succeeded")
	}
}

type testCerts struct {
	server tls.Certificate
	pool   *x509.CertPool
	client Options
}

func newCerts(t *testing.T, dir string) testCerts {
	t.Helper()
	now := time.Now()
	ca, err := devca.NewCA("client test CA", now)
	if err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := devca.WriteCerts(p("ca.pem"), ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := ca.TLSPair(p("server.pem"), p("server-key.pem"), "localhost", devca.TLSServer, now); err != nil {
		t.Fatal(err)
	}
	if err := ca.TLSPair(p("client.pem"), p("client-key.pem"), "client", devca.TLSClient, now); err != nil {
		t.Fatal(err)
	}
	srv, err := tls.LoadX509KeyPair(p("server.pem"), p("server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return testCerts{server: srv, pool: pool, client: Options{Cert: p("client.pem"), Key: p("client-key.pem"), CA: p("ca.pem")}}
}

// replica is an mTLS gRPC server with the health service that counts the
// calls it serves.
func replica(t *testing.T, c testCerts, calls *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{c.server}, ClientCAs: c.pool, ClientAuth: tls.RequireAndVerifyClientCert})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			calls.Add(1)
			return h(ctx, req)
		}),
	)
	healthpb.RegisterHealthServer(g, health.NewServer())
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

// TestDialAllRoundRobin: calls over DialAll reach every replica.
func TestDialAllRoundRobin(t *testing.T) {
	dir := clearEnv(t)
	certs := newCerts(t, dir)
	counts := make([]atomic.Int64, 3)
	var addrs []string
	for i := range counts {
		addrs = append(addrs, replica(t, certs, &counts[i]))
	}
	conn, err := DialAll(certs.client, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	for range 30 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range counts {
		if n := counts[i].Load(); n == 0 {
			t.Errorf("replica %d (%s) got no calls", i, addrs[i])
		}
	}

	// One address is Dial's behaviour, and Dial reaches a single server.
	one, err := Dial(Options{Server: addrs[0], Cert: certs.client.Cert, Key: certs.client.Key, CA: certs.client.CA})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if err := one.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	before := counts[0].Load()
	if _, err := healthpb.NewHealthClient(one).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if counts[0].Load() != before+1 {
		t.Error("Dial did not reach the named server")
	}
}

// TestDialWrongCA: a server whose certificate the CA did not sign is refused.
func TestDialWrongCA(t *testing.T) {
	dir := clearEnv(t)
	a := newCerts(t, filepath.Join(dir))
	other := t.TempDir()
	b := newCerts(t, other)
	var n atomic.Int64
	addr := replica(t, a, &n)
	o := b.client // a client of another CA: the server refuses it and it refuses the server
	o.Server = addr
	conn, err := Dial(o)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("call succeeded across CAs")
	}
	if n.Load() != 0 {
		t.Fatal("server handled a call from an unknown CA's client")
	}
}
