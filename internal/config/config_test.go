package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const valid = `
grpc:
  tls: {cert: s.pem, key: s-key.pem, client_ca: ca.pem}
token:
  module: /usr/lib/softhsm/libsofthsm2.so
  label: pecet
  pin_file: /etc/pecet/pin
clients:
  - identity: gateway
    roles: [gateway]
    keys: [gateway-decrypt]
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPC.Addr != DefaultGRPCAddr || c.HTTP.Addr != DefaultHTTPAddr {
		t.Errorf("addresses: %s %s", c.GRPC.Addr, c.HTTP.Addr)
	}
	if c.GRPC.MaxMessageBytes != 24<<20 || c.Token.MaxSessions != DefaultMaxSessions || c.ShutdownGrace != DefaultShutdownGrace ||
		c.Envelope.StreamMaxBytes != 1<<30 {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseLimits(t *testing.T) {
	c, err := Parse([]byte(valid + "limits: {rate_per_client: 2.5, burst: 5, cms_max_depth: 16, cms_max_certificates: 8, memory_limit_mb: 512}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{RatePerClient: 2.5, Burst: 5, CMSMaxDepth: 16, CMSMaxCertificates: 8, MemoryLimitMB: 512}
	if c.Limits != want {
		t.Errorf("limits = %+v, want %+v", c.Limits, want)
	}
}

func TestParseStreamLimit(t *testing.T) {
	c, err := Parse([]byte(valid + "envelope: {stream_max_bytes: 4294967296}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Envelope.StreamMaxBytes != 4<<30 {
		t.Errorf("stream_max_bytes = %d", c.Envelope.StreamMaxBytes)
	}
}

func tsaConf(old, repl string) string {
	return strings.Replace("tsa:\n  key: tsa\n  policy: 1.2.3.4.1\n", old, repl, 1)
}

func TestParseTSA(t *testing.T) {
	c, err := Parse([]byte(valid + tsaConf("key: tsa", "key: tsa\n  time_reference: {offset_file: /run/pecet/offset}")))
	if err != nil {
		t.Fatal(err)
	}
	if c.TSA == nil || c.TSA.Accuracy.Seconds() != 1 || len(c.TSA.Hashes) != 3 || !*c.TSA.IncludeTSAName ||
		c.TSA.TimeReference.Interval.Seconds() != 30 {
		t.Fatalf("TSA defaults: %+v", c.TSA)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", valid + "colour: blue\n", "colour"},
		{"unknown nested key", strings.Replace(valid, "label: pecet", "label: pecet\n  lable: x", 1), "lable"},
		{"no tls", strings.Replace(valid, "  tls: {cert: s.pem, key: s-key.pem, client_ca: ca.pem}\n", "", 1), "mTLS"},
		{"no module", strings.Replace(valid, "  module: /usr/lib/softhsm/libsofthsm2.so\n", "", 1), "token.module"},
		{"two token selectors", strings.Replace(valid, "label: pecet", "label: pecet\n  serial: \"1\"", 1), "exactly one of token.label"},
		{"PIN in both", strings.Replace(valid, "pin_file: /etc/pecet/pin", "pin_file: /etc/pecet/pin\n  pin_env: PIN", 1), "pin_file"},
		{"unknown role", strings.Replace(valid, "roles: [gateway]", "roles: [admin]", 1), `unknown role "admin"`},
		{"duplicate identity", valid + "  - identity: gateway\n    roles: [client]\n", "appears twice"},
		{"two issuer pins", valid + "    issuer: ca.pem\n    issuer_spki_sha256: " + strings.Repeat("ab", 32) + "\n", "not both"},
		{"short issuer hash", valid + "    issuer_spki_sha256: abcd\n", "issuer_spki_sha256 must be a SHA-256"},
		{"bad key hash", valid + "    key_spki_sha256: " + strings.Repeat("zz", 32) + "\n", "key_spki_sha256 must be a SHA-256"},
		{"tiny message limit", strings.Replace(valid, "grpc:\n", "grpc:\n  max_message_bytes: 10\n", 1), "max_message_bytes"},
		{"not yaml", "grpc: [", "yaml"},
		{"negative rate", valid + "limits: {rate_per_client: -1}\n", "rate_per_client"},
		{"burst without rate", valid + "limits: {burst: 5}\n", "limits.burst"},
		{"deep CMS", valid + "limits: {cms_max_depth: 1000}\n", "cms_max_depth"},
		{"many certificates", valid + "limits: {cms_max_certificates: -2}\n", "cms_max_certificates"},
		{"unknown limit", valid + "limits: {recipients: 3}\n", "recipients"},
		{"tiny stream limit", valid + "envelope: {stream_max_bytes: 100}\n", "envelope.stream_max_bytes"},
		{"stream limit unknown key", valid + "envelope: {stream_max: 100}\n", "stream_max"},
		{"RSA check off", strings.Replace(valid, "label: pecet\n", "label: pecet\n  rsa_check_every: -1\n", 1), "rsa_check_every"},
		{"tiny memory limit", valid + "limits: {memory_limit_mb: 10}\n", "memory_limit_mb"},
		{"fetch over ftp", valid + "fetch: {schemes: [ftp]}\n", "fetch.schemes"},
		{"fetch host with a path", valid + "fetch: {hosts: [\"crl.example.cz/x\"]}\n", "fetch.hosts"},
		{"many redirects", valid + "fetch: {max_redirects: 50}\n", "fetch.max_redirects"},
		{"tsa without key", valid + tsaConf("key: tsa", ""), "tsa.key"},
		{"tsa bad policy", valid + tsaConf("policy: 1.2.3.4.1", "policy: tsa-policy-1"), "tsa.policy"},
		{"tsa ordering", valid + tsaConf("key: tsa", "key: tsa\n  ordering: true"), "tsa.ordering"},
		{"tsa SHA-1", valid + tsaConf("key: tsa", "key: tsa\n  hashes: [sha256, sha1]"), "sha1 is broken"},
		{"tsa unknown key", valid + tsaConf("key: tsa", "key: tsa\n  colour: red"), "colour"},
		{"tsa two references", valid + tsaConf("key: tsa", "key: tsa\n  time_reference: {http_date_url: http://x, offset_file: /o}"), "exactly one of http_date_url"},
		{"tsa accuracy", valid + tsaConf("key: tsa", "key: tsa\n  accuracy: 2h"), "tsa.accuracy"},
		{"audit sync", valid + "audit: {file: a.log, sync: sometimes}\n", "audit.sync"},
		{"audit mirror", valid + "audit: {file: a.log, mirror: everything}\n", "audit.mirror"},
		{"audit flush interval", valid + "audit: {file: a.log, sync: begin, flush_interval: 5s}\n", "audit.flush_interval"},
		{"audit small rotation", valid + "audit: {file: a.log, max_bytes: 10}\n", "audit.max_bytes"},
		{"audit checkpoint interval", valid + "audit: {file: a.log, key: audit, checkpoint_interval: 100ms}\n", "audit.checkpoint_interval"},
		{"audit key alias", valid + "audit: {file: a.log, key: Audit Key}\n", "audit.key"},
		{"bad glob", valid + "keys: {dual_control: {aliases: [\"[\"]}}\n", "not a valid glob"},
		{"unknown dual-control operation", valid + "keys: {dual_control: {aliases: [x], operations: [sign]}}\n", `unknown "sign"`},
		{"short request ttl", valid + "keys: {dual_control: {aliases: [x], request_ttl: 1ms}}\n", "request_ttl"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("not ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

func TestPIN(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pin")
	if err := os.WriteFile(f, []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pin, err := (Token{PINFile: f}).PIN(); err != nil || pin != "1234" {
		t.Fatalf("pin file: %q %v", pin, err)
	}
	t.Setenv("PECET_TEST_PIN", "5678")
	if pin, err := (Token{PINEnv: "PECET_TEST_PIN"}).PIN(); err != nil || pin != "5678" {
		t.Fatalf("pin env: %q %v", pin, err)
	}
	_, err := (Token{PINEnv: "PECET_TEST_PIN_UNSET"}).PIN()
	if err == nil || strings.Contains(err.Error(), "5678") {
		t.Fatalf("unset env: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := (Token{PINFile: empty}).PIN(); err == nil {
		t.Fatal("empty PIN file accepted")
	}
}

func TestLoadBounded(t *testing.T) {
	f := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(f, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "1 MiB") {
		t.Fatalf("2 MiB config: %v", err)
	}
}

const withPolicies = valid + `default_policy: cz-qualified
policies:
  cz-qualified:
    trusted_list: {file: CZ.xml, signer: cz-signer.pem, grace: 72h}
    algorithms: {min_rsa_bits: 2048, min_ec_bits: 256, hashes: [SHA256, SHA384, SHA512]}
    required_qc_statements: [compliance, sscd]
    revocation: {mode: require, crls: [a.crl], fetch_crls: true, ocsp: true, ocsp_max_age: 30m, ocsp_nonce: false, timeout: 5s}
    clock_tolerance: 2m
  dev:
    anchors: [ca.pem]
    purposes: {signing: {key_usage: [digitalSignature]}}
    revocation: {mode: off}
`

func TestParsePolicies(t *testing.T) {
	c, err := Parse([]byte(withPolicies))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Policies["cz-qualified"]
	if c.DefaultPolicy != "cz-qualified" || p.Revocation.Mode != "require" || p.TrustedList.Signer != "cz-signer.pem" || p.TrustedList.Grace != 72*time.Hour || len(c.Policies) != 2 ||
		p.Revocation.OCSPMaxAge != 30*time.Minute || p.Revocation.OCSPNonce == nil || *p.Revocation.OCSPNonce {
		t.Errorf("policies not read: %+v", c.Policies)
	}
}

// TestPolicyHashesSHA3: a policy may name the SHA-3 hashes ETSI TS 119 312
// recommends.
func TestPolicyHashesSHA3(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(withPolicies, "[SHA256, SHA384, SHA512]", "[SHA256, SHA3-256, SHA3-384, SHA3-512]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Policies["cz-qualified"].Algorithms.Hashes; len(got) != 4 || got[1] != "SHA3-256" {
		t.Fatalf("hashes %v", got)
	}
}

// TestParseAllowOverrides: an absent allow_overrides is nil (the default,
// [crls]); an empty list is not (nothing allowed).
func TestParseAllowOverrides(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"", nil},
		{"    allow_overrides: []\n", []string{}},
		{"    allow_overrides: [anchors, revocation]\n", []string{"anchors", "revocation"}},
	} {
		c, err := Parse([]byte(strings.Replace(withPolicies, "    revocation: {mode: off}\n", "    revocation: {mode: off}\n"+tc.line, 1)))
		if err != nil {
			t.Fatal(err)
		}
		got := c.Policies["dev"].AllowOverrides
		if (got == nil) != (tc.want == nil) || (got != nil && !slices.Equal(*got, tc.want)) {
			t.Errorf("%q: %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestParsePoliciesRejects(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", strings.Replace(withPolicies, "clock_tolerance: 2m", "clock_tolerance: 2m\n    colour: red", 1), "colour"},
		{"no default", strings.Replace(withPolicies, "default_policy: cz-qualified\n", "", 1), "default_policy is required"},
		{"default missing", strings.Replace(withPolicies, "default_policy: cz-qualified", "default_policy: nope", 1), `"nope" is not one of`},
		{"bad mode", strings.Replace(withPolicies, "mode: require", "mode: sometimes", 1), "revocation.mode"},
		{"bad qc", strings.Replace(withPolicies, "[compliance, sscd]", "[qualified]", 1), `unknown "qualified"`},
		{"sha1", strings.Replace(withPolicies, "[SHA256, SHA384, SHA512]", "[SHA1]", 1), `"SHA1" is not allowed`},
		{"unsigned list", strings.Replace(withPolicies, ", signer: cz-signer.pem", "", 1), "signer are both required"},
		{"negative grace", strings.Replace(withPolicies, "grace: 72h", "grace: -1h", 1), "grace must not be negative"},
		{"no anchors", strings.Replace(withPolicies, "    anchors: [ca.pem]\n", "", 1), "anchors or trusted_list"},
		{"bad purpose", strings.Replace(withPolicies, "{signing:", "{sealing:", 1), `unknown purpose "sealing"`},
		{"bad override", strings.Replace(withPolicies, "    revocation: {mode: off}\n", "    revocation: {mode: off}\n    allow_overrides: [everything]\n", 1), `allow_overrides: unknown "everything"`},
		{"list file and url", strings.Replace(withPolicies, "file: CZ.xml,", "file: CZ.xml, url: https://tl.example/CZ.xml,", 1), "exactly one"},
		{"list over http", strings.Replace(withPolicies, "file: CZ.xml,", "url: http://tl.example/CZ.xml,", 1), "must be an https:// URL"},
		{"refresh too often", strings.Replace(withPolicies, "grace: 72h", "grace: 72h, refresh: 10s", 1), "refresh must be 0"},
		{"fetch timeout too long", strings.Replace(withPolicies, "grace: 72h", "grace: 72h, timeout: 1h", 1), "timeout must be between"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDualControl(t *testing.T) {
	c, err := Parse([]byte(valid + "keys:\n  dual_control:\n    aliases: [\"cssz-*\", tsa]\n"))
	if err != nil {
		t.Fatal(err)
	}
	dc := c.Keys.DualControl
	if dc.RequestTTL != DefaultRequestTTL || c.Keys.ExpiryWarningDays != DefaultExpiryWarningDays {
		t.Errorf("defaults: %+v", c.Keys)
	}
	for _, tc := range []struct {
		op, alias string
		want      bool
	}{
		{OpDestroy, "cssz-decrypt", true},
		{OpCreate, "tsa", true},
		{OpSetPrimary, "cssz-", true},
		{OpRotate, "cssz-decrypt", false}, // not in the default operations
		{OpDestroy, "client-sign", false},
		{OpDestroy, "tsa2", false},
	} {
		if got := dc.NeedsApproval(tc.op, tc.alias); got != tc.want {
			t.Errorf("NeedsApproval(%s, %s) = %v", tc.op, tc.alias, got)
		}
	}
}

// FuzzParse: the strict YAML decoder, the defaults and Validate never panic
// on any bytes; what they accept validates again (Validate is idempotent).
func FuzzParse(f *testing.F) {
	f.Add([]byte("grpc:\n  addr: 127.0.0.1:7443\n"))
	f.Add([]byte("token:\n  uri: \"pkcs11:token=pecet;pin-source=file:/tmp/pin\"\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("limits:\n  rate_per_client: 10\n  burst: 5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error outside ErrInvalid: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted, then invalid: %v", err)
		}
	})
}

// TestParseNetDefaults: without any network keys, the HTTP timeouts, the
// body cap, the /tsa limits and the gRPC stream and keepalive settings all
// take their defaults (none is left zero, which would mean "none").
func TestParseNetDefaults(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	h, g := c.HTTP, c.GRPC
	for _, z := range []struct {
		name string
		zero bool
	}{
		{"http.read_header_timeout", h.ReadHeaderTimeout != DefaultHTTPReadHeaderTimeout},
		{"http.read_timeout", h.ReadTimeout != DefaultHTTPReadTimeout},
		{"http.write_timeout", h.WriteTimeout != DefaultHTTPWriteTimeout},
		{"http.idle_timeout", h.IdleTimeout != DefaultHTTPIdleTimeout},
		{"http.max_body_bytes", h.MaxBodyBytes != DefaultHTTPMaxBodyBytes},
		{"http.tsa", h.TSA != HTTPTSA{RatePerClient: DefaultTSARatePerClient, BurstPerClient: DefaultTSABurstPerClient, Rate: DefaultTSARate, Burst: DefaultTSABurst, MaxClients: DefaultTSAMaxClients}},
		{"grpc.max_concurrent_streams", g.MaxConcurrentStreams != DefaultGRPCMaxConcurrentStreams},
		{"grpc.stream_idle_timeout", g.StreamIdleTimeout != DefaultGRPCStreamIdleTimeout},
		{"grpc.keepalive.time", g.Keepalive.Time != DefaultGRPCKeepaliveTime},
		{"grpc.keepalive.timeout", g.Keepalive.Timeout != DefaultGRPCKeepaliveTimeout},
		{"grpc.keepalive.max_connection_idle", g.Keepalive.MaxConnectionIdle != DefaultGRPCMaxConnectionIdle},
		{"grpc.keepalive.max_connection_age", g.Keepalive.MaxConnectionAge != DefaultGRPCMaxConnectionAge},
		{"grpc.keepalive.max_connection_age_grace", g.Keepalive.MaxConnectionAgeGrace != DefaultGRPCMaxConnectionAgeGrace},
		{"grpc.keepalive.min_time", g.Keepalive.MinTime != DefaultGRPCKeepaliveMinTime},
		{"grpc.keepalive.permit_without_stream", g.Keepalive.PermitWithoutStream == nil || !*g.Keepalive.PermitWithoutStream},
	} {
		if z.zero {
			t.Errorf("%s: default not applied", z.name)
		}
	}
}

func TestParseNet(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(valid, "grpc:\n", `grpc:
  max_concurrent_streams: 32
  stream_idle_timeout: 5s
  keepalive: {time: 1m, timeout: 5s, max_connection_idle: 2m, max_connection_age: 10m, max_connection_age_grace: 30s, min_time: 20s, permit_without_stream: false}
`, 1) + `http:
  read_header_timeout: 2s
  read_timeout: 3s
  write_timeout: 4s
  idle_timeout: 5s
  max_body_bytes: 4096
  tsa: {rate_per_client: 1.5, burst_per_client: 3, rate: 50, burst: 60, max_clients: 100}
`))
	if err != nil {
		t.Fatal(err)
	}
	no := false
	wantG := GRPCKeepalive{Time: time.Minute, Timeout: 5 * time.Second, MaxConnectionIdle: 2 * time.Minute, MaxConnectionAge: 10 * time.Minute,
		MaxConnectionAgeGrace: 30 * time.Second, MinTime: 20 * time.Second, PermitWithoutStream: &no}
	k := c.GRPC.Keepalive
	if c.GRPC.MaxConcurrentStreams != 32 || c.GRPC.StreamIdleTimeout != 5*time.Second || *k.PermitWithoutStream ||
		k.Time != wantG.Time || k.Timeout != wantG.Timeout || k.MaxConnectionIdle != wantG.MaxConnectionIdle ||
		k.MaxConnectionAge != wantG.MaxConnectionAge || k.MaxConnectionAgeGrace != wantG.MaxConnectionAgeGrace || k.MinTime != wantG.MinTime {
		t.Errorf("grpc = %+v", c.GRPC)
	}
	wantH := HTTP{Addr: DefaultHTTPAddr, ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 4 * time.Second,
		IdleTimeout: 5 * time.Second, MaxBodyBytes: 4096, TSA: HTTPTSA{RatePerClient: 1.5, BurstPerClient: 3, Rate: 50, Burst: 60, MaxClients: 100}}
	if c.HTTP != wantH {
		t.Errorf("http = %+v, want %+v", c.HTTP, wantH)
	}
}

func TestParseNetRejects(t *testing.T) {
	grpc := func(s string) string { return strings.Replace(valid, "grpc:\n", "grpc:\n  "+s+"\n", 1) }
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown http key", valid + "http: {read_timout: 1s}\n", "read_timout"},
		{"unknown tsa key", valid + "http: {tsa: {rate_per_ip: 1}}\n", "rate_per_ip"},
		{"unknown keepalive key", grpc("keepalive: {interval: 1s}"), "interval"},
		{"read timeout too short", valid + "http: {read_timeout: 1ms}\n", "http.read_timeout"},
		{"header timeout above read timeout", valid + "http: {read_header_timeout: 20s, read_timeout: 10s}\n", "must not exceed http.read_timeout"},
		{"write timeout too long", valid + "http: {write_timeout: 1h}\n", "http.write_timeout"},
		{"body cap too large", valid + "http: {max_body_bytes: 1048576}\n", "http.max_body_bytes"},
		{"tsa rate negative", valid + "http: {tsa: {rate: -1}}\n", "http.tsa.rate"},
		{"tsa burst negative", valid + "http: {tsa: {burst_per_client: -1}}\n", "http.tsa.burst_per_client"},
		{"tsa table tiny", valid + "http: {tsa: {max_clients: 2}}\n", "http.tsa.max_clients"},
		{"streams negative", grpc("max_concurrent_streams: -1"), "max_concurrent_streams"},
		{"streams huge", grpc("max_concurrent_streams: 1000000"), "grpc.max_concurrent_streams"},
		{"idle timeout tiny", grpc("stream_idle_timeout: 1ms"), "grpc.stream_idle_timeout"},
		{"keepalive min time", grpc("keepalive: {min_time: 1ms}"), "grpc.keepalive.min_time"},
		{"keepalive min time above the client's pings", grpc("keepalive: {min_time: 1m}"), "grpc.keepalive.min_time"},
		{"connection age tiny", grpc("keepalive: {max_connection_age: 1s}"), "grpc.keepalive.max_connection_age"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

// TestParseSHA256: fingerprints as sha256sum (lower case) and openssl
// (upper case, colons) print them.
func TestParseSHA256(t *testing.T) {
	hexLower := strings.Repeat("0a", 32)
	withColons := strings.TrimSuffix(strings.Repeat("0A:", 32), ":")
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{hexLower, true},
		{withColons, true},
		{hexLower[:62], false},
		{hexLower + "00", false},
		{"", false},
		{strings.Repeat("g", 64), false},
	} {
		got, ok := ParseSHA256(tc.in)
		if ok != tc.ok || ok && got[0] != 0x0a {
			t.Errorf("%q: ok %v, want %v", tc.in, ok, tc.ok)
		}
	}
}

// TestPINFileMode: a PIN file group or others may access is refused with
// a message naming the file and its mode; owner-only files, directly or
// through a symbolic link (a Kubernetes Secret), are read.
func TestPINFileMode(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		link bool
		ok   bool
	}{
		{0o600, false, true},
		{0o400, false, true},
		{0o400, true, true},
		{0o644, false, false},
		{0o640, false, false},
		{0o604, false, false},
		{0o620, false, false},
		{0o644, true, false},
	} {
		name := fmt.Sprintf("%04o-link-%v", tc.mode, tc.link)
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, []byte("1234\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tc.mode); err != nil {
				t.Fatal(err)
			}
			if tc.link {
				l := f + ".link"
				if err := os.Symlink(f, l); err != nil {
					t.Fatal(err)
				}
				f = l
			}
			pin, err := (Token{PINFile: f}).PIN()
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && pin != "1234" {
				t.Fatalf("pin %q", pin)
			}
			if !tc.ok && (!errors.Is(err, ErrPINFileMode) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", tc.mode)) || strings.Contains(err.Error(), "1234")) {
				t.Fatalf("error %q: want ErrPINFileMode naming mode %04o, without the PIN", err, tc.mode)
			}
		})
	}
}

// TestPINEnvRemoved: once pin_env is read, the variable is gone from the
// process environment, from what a child process inherits, and from
// /proc/self/environ (the block the kernel set up at exec, which
// os.Unsetenv does not touch). It runs in a child test process started
// with the variable, as pecetd is.
func TestPINEnvRemoved(t *testing.T) {
	const secret = "s3cr3t-pin-4711"
	if os.Getenv("PECET_PIN_ENV_CHILD") == "1" {
		pin, err := (Token{PINEnv: "PECET_TEST_PIN_ENV"}).PIN()
		if err != nil || pin != secret {
			fmt.Printf("PIN: %q %v\n", pin, err)
			return
		}
		if _, ok := os.LookupEnv("PECET_TEST_PIN_ENV"); ok {
			fmt.Println("still in os.Environ")
			return
		}
		child, err := exec.Command("env").Output()
		if err != nil || bytes.Contains(child, []byte(secret)) {
			fmt.Printf("inherited by a child process (%v)\n", err)
			return
		}
		if runtime.GOOS == "linux" {
			environ, err := os.ReadFile("/proc/self/environ")
			if err != nil || bytes.Contains(environ, []byte(secret)) {
				fmt.Printf("still in /proc/self/environ (%v)\n", err)
				return
			}
		}
		fmt.Println("PIN-ENV-GONE")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPINEnvRemoved$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PECET_PIN_ENV_CHILD=1", "PECET_TEST_PIN_ENV="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("PIN-ENV-GONE")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestParseTrustedListSource: a list from a URL with a refresh interval
// and the default fetch timeout.
func TestParseTrustedListSource(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(withPolicies, "file: CZ.xml,", "url: https://tl.example/CZ.xml, refresh: 6h,", 1)))
	if err != nil {
		t.Fatal(err)
	}
	tl := c.Policies["cz-qualified"].TrustedList
	if tl.URL != "https://tl.example/CZ.xml" || tl.Refresh != 6*time.Hour || tl.Timeout != DefaultTrustedListTimeout || tl.File != "" {
		t.Errorf("trusted_list = %+v", tl)
	}
}

// TestChanges: a reload names the sections it changed, split into those
// applied live and those that need a restart.
func TestChanges(t *testing.T) {
	base, err := Parse([]byte(withPolicies))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		from, to      string
		live, restart string
	}{
		{"nothing", "", "", "", ""},
		{"a client's alias", "keys: [gateway-decrypt]", "keys: [gateway-decrypt, client-sign]", "clients", ""},
		{"a policy's grace", "grace: 72h", "grace: 96h", "policies", ""},
		{"the token", "label: pecet", "label: other", "", "token"},
		{"an address and a client", "keys: [gateway-decrypt]\n", "keys: [x]\nhttp: {addr: 127.0.0.1:9}\n", "clients", "http"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next, err := Parse([]byte(strings.Replace(withPolicies, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			live, restart := Changes(base, next)
			if strings.Join(live, ",") != tc.live || strings.Join(restart, ",") != tc.restart {
				t.Fatalf("live %v restart %v, want %q %q", live, restart, tc.live, tc.restart)
			}
		})
	}
}

// TestParseTrustedListLOTL: a list whose signers come from the EU list
// of lists, and the combinations refused.
func TestParseTrustedListLOTL(t *testing.T) {
	lotl := strings.Replace(withPolicies, "{file: CZ.xml, signer: cz-signer.pem,", "{lotl: https://ec.europa.eu/tools/lotl/eu-lotl.xml, lotl_signer: oj.pem, territory: CZ,", 1)
	c, err := Parse([]byte(lotl))
	if err != nil {
		t.Fatal(err)
	}
	tl := c.Policies["cz-qualified"].TrustedList
	if tl.LOTL != "https://ec.europa.eu/tools/lotl/eu-lotl.xml" || tl.LOTLSigner != "oj.pem" || tl.Territory != "CZ" || tl.Signer != "" {
		t.Errorf("trusted_list = %+v", tl)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"lotl and signer", strings.Replace(lotl, "territory: CZ,", "territory: CZ, signer: cz.pem,", 1), "signer is not allowed"},
		{"lotl without its signer", strings.Replace(lotl, " lotl_signer: oj.pem,", "", 1), "lotl_signer is required"},
		{"lotl without territory", strings.Replace(lotl, " territory: CZ,", "", 1), "territory must be"},
		{"lowercase territory", strings.Replace(lotl, "territory: CZ", "territory: cz", 1), "territory must be"},
		{"lotl over http", strings.Replace(lotl, "https://ec.europa.eu", "http://ec.europa.eu", 1), "lotl must be a file or an https"},
		{"lotl, file and url", strings.Replace(lotl, "territory: CZ,", "territory: CZ, file: CZ.xml, url: https://tl.example/CZ.xml,", 1), "at most one"},
		{"territory without lotl", strings.Replace(withPolicies, "signer: cz-signer.pem,", "signer: cz-signer.pem, territory: CZ,", 1), "need lotl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
