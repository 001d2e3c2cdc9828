package config

import "time"

// Network defaults (docs/operations.md "Network limits"; docs/security.md
// "Network, limits and identities" says why each exists).
const (
	// HTTP listener: a slow client holds a connection (and a goroutine)
	// for at most these times. The HTTP port serves health, metrics and
	// POST /tsa, whose requests are about 100 bytes.
	DefaultHTTPReadHeaderTimeout = 5 * time.Second
	DefaultHTTPReadTimeout       = 10 * time.Second
	DefaultHTTPWriteTimeout      = 30 * time.Second
	DefaultHTTPIdleTimeout       = 60 * time.Second
	// DefaultHTTPMaxBodyBytes is the largest request body read on the
	// HTTP port (tsa.MaxRequestBytes, the most a TimeStampReq may be).
	DefaultHTTPMaxBodyBytes = 64 << 10

	// POST /tsa has no client certificate: its limits are per client
	// address (IPv4 address, IPv6 /64) and for all clients together.
	DefaultTSARatePerClient  = 10
	DefaultTSABurstPerClient = 20
	DefaultTSARate           = 200
	DefaultTSABurst          = 400
	DefaultTSAMaxClients     = 10000

	// gRPC: calls in flight on one connection; the token has
	// token.max_sessions sessions, so more would only queue.
	DefaultGRPCMaxConcurrentStreams = 128
	// DefaultGRPCStreamIdleTimeout ends an EncryptStream or DecryptStream
	// that has neither received nor sent a message for this long.
	DefaultGRPCStreamIdleTimeout = 60 * time.Second
	// Keepalive: the server pings a connection idle for Time and drops it
	// when no answer comes within Timeout; it closes connections without
	// calls for MaxConnectionIdle, and every connection after
	// MaxConnectionAge (plus MaxConnectionAgeGrace for calls in flight),
	// so clients spread over new replicas. Clients may ping every MinTime
	// (a client pinging more often is disconnected), also without calls.
	DefaultGRPCKeepaliveTime         = 2 * time.Minute
	DefaultGRPCKeepaliveTimeout      = 20 * time.Second
	DefaultGRPCMaxConnectionIdle     = 15 * time.Minute
	DefaultGRPCMaxConnectionAge      = time.Hour
	DefaultGRPCMaxConnectionAgeGrace = 5 * time.Minute
	DefaultGRPCKeepaliveMinTime      = 10 * time.Second
	defaultGRPCPermitWithoutStream   = true
)

// HTTPTSA limits POST /tsa, which any network peer may call: a token
// bucket per client address and one for all clients; a request over either
// gets 429 before anything is parsed, signed or audited.
type HTTPTSA struct {
	// RatePerClient is the requests per second one client address (an
	// IPv4 address, an IPv6 /64) may make (default 10).
	RatePerClient float64 `yaml:"rate_per_client"`
	// BurstPerClient is that bucket's size (default 20).
	BurstPerClient int `yaml:"burst_per_client"`
	// Rate is the requests per second of all clients together (default 200).
	Rate float64 `yaml:"rate"`
	// Burst is that bucket's size (default 400).
	Burst int `yaml:"burst"`
	// MaxClients bounds the per-address table (default 10000); while it is
	// full of active addresses, new ones share one bucket.
	MaxClients int `yaml:"max_clients"`
}

// GRPCKeepalive are the gRPC server's keepalive parameters and the
// enforcement policy for clients' pings.
type GRPCKeepalive struct {
	Time                  time.Duration `yaml:"time"`
	Timeout               time.Duration `yaml:"timeout"`
	MaxConnectionIdle     time.Duration `yaml:"max_connection_idle"`
	MaxConnectionAge      time.Duration `yaml:"max_connection_age"`
	MaxConnectionAgeGrace time.Duration `yaml:"max_connection_age_grace"`
	MinTime               time.Duration `yaml:"min_time"`
	PermitWithoutStream   *bool         `yaml:"permit_without_stream"`
}

// WithDefaults fills the zero network settings of h with the defaults. The
// /tsa rates are left alone: zero there means no limit to the server
// (tests), and Parse fills them (a configured pecetd always limits /tsa).
func (h HTTP) WithDefaults() HTTP {
	def(&h.ReadHeaderTimeout, DefaultHTTPReadHeaderTimeout)
	def(&h.ReadTimeout, DefaultHTTPReadTimeout)
	def(&h.WriteTimeout, DefaultHTTPWriteTimeout)
	def(&h.IdleTimeout, DefaultHTTPIdleTimeout)
	def(&h.MaxBodyBytes, DefaultHTTPMaxBodyBytes)
	return h
}

// WithDefaults fills the zero stream and keepalive settings of g.
func (g GRPC) WithDefaults() GRPC {
	def(&g.MaxConcurrentStreams, DefaultGRPCMaxConcurrentStreams)
	def(&g.StreamIdleTimeout, DefaultGRPCStreamIdleTimeout)
	k := &g.Keepalive
	def(&k.Time, DefaultGRPCKeepaliveTime)
	def(&k.Timeout, DefaultGRPCKeepaliveTimeout)
	def(&k.MaxConnectionIdle, DefaultGRPCMaxConnectionIdle)
	def(&k.MaxConnectionAge, DefaultGRPCMaxConnectionAge)
	def(&k.MaxConnectionAgeGrace, DefaultGRPCMaxConnectionAgeGrace)
	def(&k.MinTime, DefaultGRPCKeepaliveMinTime)
	if k.PermitWithoutStream == nil {
		yes := defaultGRPCPermitWithoutStream
		k.PermitWithoutStream = &yes
	}
	return g
}

func def[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func (c *Config) applyNetDefaults() {
	c.HTTP = c.HTTP.WithDefaults()
	c.GRPC = c.GRPC.WithDefaults()
	t := &c.HTTP.TSA
	def(&t.RatePerClient, DefaultTSARatePerClient)
	def(&t.BurstPerClient, DefaultTSABurstPerClient)
	def(&t.Rate, DefaultTSARate)
	def(&t.Burst, DefaultTSABurst)
	def(&t.MaxClients, DefaultTSAMaxClients)
}

func (c *Config) validateNet(bad func(string, ...any)) {
	h := c.HTTP
	between := func(name string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			bad("%s must be between %v and %v (got %v)", name, lo, hi, d)
		}
	}
	between("http.read_header_timeout", h.ReadHeaderTimeout, 100*time.Millisecond, time.Minute)
	between("http.read_timeout", h.ReadTimeout, 100*time.Millisecond, 5*time.Minute)
	between("http.write_timeout", h.WriteTimeout, 100*time.Millisecond, 5*time.Minute)
	between("http.idle_timeout", h.IdleTimeout, 100*time.Millisecond, time.Hour)
	if h.ReadHeaderTimeout > h.ReadTimeout {
		bad("http.read_header_timeout must not exceed http.read_timeout")
	}
	if h.MaxBodyBytes < 1<<10 || h.MaxBodyBytes > DefaultHTTPMaxBodyBytes {
		bad("http.max_body_bytes must be between 1 KiB and 64 KiB (the largest TimeStampReq pecet reads)")
	}
	t := h.TSA
	if t.RatePerClient <= 0 || t.Rate <= 0 || t.RatePerClient > 1e6 || t.Rate > 1e6 {
		bad("http.tsa.rate_per_client and http.tsa.rate must be between 0 and 1000000 requests per second (POST /tsa is always limited)")
	}
	if t.BurstPerClient < 1 || t.Burst < 1 {
		bad("http.tsa.burst_per_client and http.tsa.burst must be at least 1")
	}
	if t.MaxClients < 16 || t.MaxClients > 10_000_000 {
		bad("http.tsa.max_clients must be between 16 and 10000000")
	}
	g := c.GRPC
	if g.MaxConcurrentStreams < 1 || g.MaxConcurrentStreams > 1<<16 {
		bad("grpc.max_concurrent_streams must be between 1 and 65536")
	}
	between("grpc.stream_idle_timeout", g.StreamIdleTimeout, 100*time.Millisecond, time.Hour)
	k := g.Keepalive
	between("grpc.keepalive.time", k.Time, time.Second, 24*time.Hour)
	between("grpc.keepalive.timeout", k.Timeout, time.Second, 10*time.Minute)
	between("grpc.keepalive.max_connection_idle", k.MaxConnectionIdle, time.Second, 7*24*time.Hour)
	between("grpc.keepalive.max_connection_age", k.MaxConnectionAge, time.Minute, 30*24*time.Hour)
	between("grpc.keepalive.max_connection_age_grace", k.MaxConnectionAgeGrace, time.Second, 24*time.Hour)
	// The pecet client pings every 30 s; a larger min_time would have the
	// server close its connections for pinging too often.
	between("grpc.keepalive.min_time", k.MinTime, time.Second, 30*time.Second)
}
