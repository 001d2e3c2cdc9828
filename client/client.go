package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// DefaultServer is pecetd's default gRPC address.
const DefaultServer = "127.0.0.1:7443"

// DefaultDevDir is the dev folder `pecetd --dev` makes.
const DefaultDevDir = ".pecet-dev"

// DefaultMaxMessageBytes matches pecetd's default limit.
const DefaultMaxMessageBytes = 24 << 20

// Options say where pecetd is and who we are. Empty fields are taken from
// the PECET_* environment variables, then from the dev folder.
type Options struct {
	Server string // host:port (PECET_SERVER)
	Cert   string // client certificate PEM (PECET_CERT)
	Key    string // client key PEM (PECET_KEY)
	CA     string // CA bundle that signed the server certificate (PECET_CA)
	DevDir string // dev folder (PECET_DEV_DIR, else ./.pecet-dev when present)
	Role   string // which dev role certificate to use: client, gateway, officer
	// ServerName is the name the server certificate must carry; empty means
	// the host of the address dialled (of the first address for DialAll).
	ServerName string
	// MaxMessageBytes bounds messages both ways (default 24 MiB).
	MaxMessageBytes int
}

// Conn is a connection with the pecet.v1 clients on it.
type Conn struct {
	*grpc.ClientConn
	Sign      pecetv1.SignServiceClient
	Keys      pecetv1.KeyServiceClient
	Policy    pecetv1.PolicyServiceClient
	Envelope  pecetv1.EnvelopeServiceClient
	Timestamp pecetv1.TimestampServiceClient
	Archive   pecetv1.ArchiveServiceClient
}

// ErrNoCredentials: neither explicit files nor a dev folder were found.
var ErrNoCredentials = errors.New("client: no client certificate: pass --cert/--key/--ca (or PECET_CERT, PECET_KEY, PECET_CA), or run pecetd --dev in this folder")

// Resolve fills Options from the environment and the dev folder.
func (o Options) Resolve() (Options, error) {
	env := func(p *string, name string) {
		if *p == "" {
			*p = os.Getenv(name)
		}
	}
	env(&o.Server, "PECET_SERVER")
	env(&o.Cert, "PECET_CERT")
	env(&o.Key, "PECET_KEY")
	env(&o.CA, "PECET_CA")
	env(&o.DevDir, "PECET_DEV_DIR")
	if o.DevDir == "" {
		if st, err := os.Stat(DefaultDevDir); err == nil && st.IsDir() {
			o.DevDir = DefaultDevDir
		}
	}
	if o.DevDir != "" {
		role := o.Role
		if role == "" {
			role = "client"
		}
		dev := func(p *string, name string) {
			if *p == "" {
				*p = filepath.Join(o.DevDir, name)
			}
		}
		dev(&o.Cert, role+".pem")
		dev(&o.Key, role+"-key.pem")
		dev(&o.CA, "ca.pem")
		if o.Server == "" {
			o.Server = devServer(o.DevDir)
		}
	}
	if o.Server == "" {
		o.Server = DefaultServer
	}
	if o.Cert == "" || o.Key == "" || o.CA == "" {
		return o, ErrNoCredentials
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	return o, nil
}

// devServer reads the address a running `pecetd --dev` wrote.
func devServer(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "pecetd.addr"))
	if err != nil {
		return ""
	}
	var ep struct {
		GRPC string `json:"grpc"`
	}
	if json.Unmarshal(b, &ep) != nil {
		return ""
	}
	return ep.GRPC
}

// TLSConfig loads the client certificate and the server CA.
func (o Options) TLSConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.Cert, o.Key)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	pem, err := os.ReadFile(o.CA)
	if err != nil {
		return nil, fmt.Errorf("server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("server CA %s: no PEM certificates", o.CA)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: o.ServerName, MinVersion: tls.VersionTLS12}, nil
}

// Dial resolves the options and connects. The connection is lazy: the first
// call reports an unreachable server.
func Dial(o Options) (*Conn, error) {
	o, err := o.Resolve()
	if err != nil {
		return nil, err
	}
	return dial(o, o.Server)
}

// DialAll connects to several pecetd replicas at once and spreads calls over
// them with gRPC's round_robin balancer: a replica that stops (a rolling
// upgrade, a crash) drops out of the rotation and rejoins when it answers
// again. Replicas are stateless (the keys are on the shared HSM), so any of
// them can serve any call. With no addresses it is Dial.
//
// Every replica must present a certificate valid for one name: the host of
// the first address, or Options.ServerName. Behind a DNS name that resolves
// to the replicas (a Kubernetes headless Service), Dial with
// Server "dns:///pecet.example:7443" balances the same way.
func DialAll(o Options, addrs ...string) (*Conn, error) {
	o, err := o.Resolve()
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return dial(o, o.Server)
	}
	state := resolver.State{}
	for _, a := range addrs {
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	// A manual resolver per connection: the addresses are this call's
	// alone, and no global resolver registry is touched.
	r := manual.NewBuilderWithScheme("pecet-replicas")
	r.InitialState(state)
	return dial(o, "pecet-replicas:///"+addrs[0], grpc.WithResolvers(r))
}

func dial(o Options, target string, extra ...grpc.DialOption) (*Conn, error) {
	tc, err := o.TLSConfig()
	if err != nil {
		return nil, err
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(o.MaxMessageBytes), grpc.MaxCallSendMsgSize(o.MaxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, PermitWithoutStream: true}),
		// round_robin: a name that resolves to several replicas (a
		// Kubernetes headless Service, dns:///pecet.ns.svc:7443) spreads
		// calls over all of them; one address behaves as pick_first.
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		// pecetd replicas sit on a LAN next to the HSM: a restarted one
		// (a rolling upgrade) should be back in rotation within seconds,
		// not after gRPC's default back-off of up to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, extra...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return &Conn{
		ClientConn: cc,
		Sign:       pecetv1.NewSignServiceClient(cc),
		Keys:       pecetv1.NewKeyServiceClient(cc),
		Policy:     pecetv1.NewPolicyServiceClient(cc),
		Envelope:   pecetv1.NewEnvelopeServiceClient(cc),
		Timestamp:  pecetv1.NewTimestampServiceClient(cc),
		Archive:    pecetv1.NewArchiveServiceClient(cc),
	}, nil
}

// WaitReady blocks until the connection is up or ctx ends.
func (c *Conn) WaitReady(ctx context.Context) error {
	c.Connect()
	for {
		s := c.GetState()
		if s == connectivity.Ready {
			return nil
		}
		if !c.WaitForStateChange(ctx, s) {
			return ctx.Err()
		}
	}
}

// MaxMessageBytesOrDefault is the message bound in force.
func (o Options) MaxMessageBytesOrDefault() int {
	if o.MaxMessageBytes > 0 {
		return o.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}
