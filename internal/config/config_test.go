package config

import (
	"errors"
	"os"
	"path/filepath"
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
		{"audit flush interval", valid + "audit: {file: a.log, sync: begin, flush_interval: 5s}\n", "audit.flush_interval"},
		{"audit small rotation", valid + "audit: {file: a.log, max_bytes: 10}\n", "audit.max_bytes"},
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
    revocation: {mode: require, crls: [a.crl], fetch_crls: true, ocsp: true, timeout: 5s}
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
	if c.DefaultPolicy != "cz-qualified" || p.Revocation.Mode != "require" || p.TrustedList.Signer != "cz-signer.pem" || p.TrustedList.Grace != 72*time.Hour || len(c.Policies) != 2 {
		t.Errorf("policies not read: %+v", c.Policies)
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
