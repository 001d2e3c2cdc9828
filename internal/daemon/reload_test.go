package daemon

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/server"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// tlIssuer re-signs the real Czech list with a test key, as another issue
// (sequence number, issue time, NextUpdate): the real signer's key is not
// ours. Its certificate is written to dir/tl-signer.pem.
type tlIssuer struct {
	key    *rsa.PrivateKey
	signer string
	cz     []byte
}

func newTLIssuer(t *testing.T, dir string) *tlIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test TL signer"},
		NotBefore: time.Now().AddDate(-1, 0, 0), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	signer := filepath.Join(dir, "tl-signer.pem")
	if err := devca.WriteCerts(signer, cert); err != nil {
		t.Fatal(err)
	}
	cz, err := os.ReadFile(testtool.Vectors(t, "trusted-lists", "CZ.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return &tlIssuer{key: key, signer: signer, cz: cz}
}

// issue is CZ.xml as issue seq, issued a day ago, next update in next.
func (is *tlIssuer) issue(t *testing.T, seq int, next time.Duration) []byte {
	t.Helper()
	data := is.cz
	for re, with := range map[string]string{
		`<TSLSequenceNumber>[^<]*<`:         fmt.Sprintf("<TSLSequenceNumber>%d<", seq),
		`<ListIssueDateTime>[^<]*<`:         "<ListIssueDateTime>" + time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339) + "<",
		`(<NextUpdate>\s*<dateTime>)[^<]*<`: "${1}" + time.Now().Add(next).UTC().Format(time.RFC3339) + "<",
	} {
		data = regexp.MustCompile(re).ReplaceAll(data, []byte(with))
	}
	out, err := policy.ResignTrustedList(data, is.key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const reloadConfig = `grpc:
  tls: {cert: s.pem, key: s-key.pem, client_ca: ca.pem}
token: {module: /nonexistent/libsofthsm2.so, label: pecet, pin_file: pin}
audit: {file: audit.log}
default_policy: cz
policies:
  cz:
    trusted_list: {%s, signer: tl-signer.pem}
    revocation: {mode: "off"}
clients:
  - {identity: client, roles: [client], keys: [client-sign]}
`

// startReloader puts cfgPath in force as Run does, without a token (no TSA
// configured) or listeners.
//
//nolint:revive // a test helper takes t first, as the testing package's helpers do
func startReloader(t *testing.T, ctx context.Context, cfgPath string, rt http.RoundTripper) (*reloader, *server.Server, *metrics.Metrics) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	al, err := audit.Open(audit.Options{File: filepath.Join(filepath.Dir(cfgPath), "audit.log"), Mirror: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	m := metrics.New(func() (int, int) { return 0, 0 })
	// The clients are pinned to the client CA, which build reads.
	ca, err := devca.NewCA("reload test client CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := devca.WriteCerts(filepath.Join(filepath.Dir(cfgPath), "ca.pem"), ca.Cert); err != nil {
		t.Fatal(err)
	}
	r := &reloader{o: Options{ConfigPath: cfgPath}, log: log, al: al, m: m, now: time.Now, transport: rt}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.build(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.WatchTrustedLists(r.trustedLists, time.Now)
	srv := server.New(server.Deps{Auth: st.live.Auth, Validator: st.live.Validator, Policies: st.live.Policies, Metrics: m, Log: log})
	r.start(ctx, srv, st)
	return r, srv, m
}

// gauge reads a series of policy cz (and result, when not empty) from reg;
// 0 when absent.
func gauge(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if (l.GetName() == "policy" && l.GetValue() != "cz") || (l.GetName() == "result" && l.GetValue() != result) {
					continue next
				}
			}
			if c := mt.GetCounter(); c != nil {
				return c.GetValue()
			}
			return mt.GetGauge().GetValue()
		}
	}
	return 0
}

// gaugeLabel reads the series of name with label = value.
func gaugeLabel(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// inForce is the sequence number of policy cz's list as ListPolicies shows it.
func inForce(t *testing.T, srv *server.Server) string {
	t.Helper()
	for _, p := range srv.Current().Policies.Policies(time.Now()) {
		if p.Name == "cz" && p.TrustedList != nil {
			return p.TrustedList.SequenceNumber
		}
	}
	t.Fatal("policy cz has no trusted list in force")
	return ""
}

// TestTrustedListReloadFile: a reload replaces the list only with a newer
// or equal issue that verifies and is current; anything else leaves the
// list in force, counted as refused, and pecetd keeps serving.
func TestTrustedListReloadFile(t *testing.T) {
	dir := t.TempDir()
	is := newTLIssuer(t, dir)
	list := filepath.Join(dir, "CZ.xml")
	write := func(b []byte) {
		if err := os.WriteFile(list, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(is.issue(t, 78, 90*24*time.Hour))
	cfgPath := filepath.Join(dir, "pecet.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, reloadConfig, "file: CZ.xml"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, srv, m := startReloader(t, ctx, cfgPath, nil)
	if got := inForce(t, srv); got != "78" {
		t.Fatalf("at start: sequence %s", got)
	}
	broken := is.issue(t, 90, 90*24*time.Hour)
	broken = []byte(strings.Replace(string(broken), "PostSignum", "PostSignun", 1))
	tests := []struct {
		name   string
		data   []byte
		want   string // sequence in force afterwards
		result string // pecet_trusted_list_loads_total result
	}{
		{"newer issue", is.issue(t, 79, 90*24*time.Hour), "79", "updated"},
		{"same issue", is.issue(t, 79, 90*24*time.Hour), "79", "unchanged"},
		{"older issue (rollback)", is.issue(t, 77, 90*24*time.Hour), "79", "refused"},
		{"past its NextUpdate", is.issue(t, 80, -time.Hour), "79", "refused"},
		{"signature broken", broken, "79", "refused"},
		{"not XML", []byte("<<<"), "79", "refused"},
		{"the real list, other signer", is.cz, "79", "refused"},
		{"newer again", is.issue(t, 81, 90*24*time.Hour), "81", "updated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.data)
			before := gauge(t, m.Registry, "pecet_trusted_list_loads_total", tc.result)
			if err := r.Reload(ctx, "test"); err != nil {
				t.Fatalf("reload: %v", err)
			}
			if got := inForce(t, srv); got != tc.want {
				t.Fatalf("sequence in force %s, want %s", got, tc.want)
			}
			if after := gauge(t, m.Registry, "pecet_trusted_list_loads_total", tc.result); after != before+1 {
				t.Fatalf("loads_total{result=%q} %v -> %v", tc.result, before, after)
			}
		})
	}
	// A new policy whose list fails has no list to keep: the reload is
	// refused as a whole, counted, and the policies stay as they were.
	if err := os.WriteFile(filepath.Join(dir, "broken.xml"), broken, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(fmt.Sprintf(reloadConfig, "file: CZ.xml"), "\nclients:", "\n  cz2:\n    trusted_list: {file: broken.xml, signer: tl-signer.pem}\nclients:", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	failures := func() float64 { return gaugeLabel(t, m.Registry, "pecet_config_reload_total", "result", "failure") }
	before := failures()
	if err := r.Reload(ctx, "test"); !errors.Is(err, ErrReloadRefused) || !errors.Is(err, policy.ErrTrustedListSig) {
		t.Fatalf("reload with a broken list for a new policy: %v", err)
	}
	if srv.Current().Policies.Has("cz2") || inForce(t, srv) != "81" || failures() != before+1 {
		t.Fatalf("after a refused reload: cz2 %v, cz %s, failures %v -> %v", srv.Current().Policies.Has("cz2"), inForce(t, srv), before, failures())
	}

	// The gauges show the list in force.
	if got := gauge(t, m.Registry, "pecet_trusted_list_sequence_number", ""); got != 81 {
		t.Fatalf("pecet_trusted_list_sequence_number{policy=cz} = %v", got)
	}
	if got := gauge(t, m.Registry, "pecet_trusted_list_age_seconds", ""); got < 23*3600 || got > 25*3600 {
		t.Fatalf("pecet_trusted_list_age_seconds{policy=cz} = %v, want about a day", got)
	}
	// The audit log records the replacements by sequence number.
	b, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "policies.cz.trusted_list"); n != 2 {
		t.Fatalf("%d reload lines name the list, want 2 (79, 81):\n%s", n, b)
	}
}

// TestTrustedListRefreshURL: with trusted_list.url and refresh, pecetd
// fetches the list on the interval and puts a newer issue in force; a
// failing fetch (server error, oversized body) leaves the list in force.
func TestTrustedListRefreshURL(t *testing.T) {
	dir := t.TempDir()
	is := newTLIssuer(t, dir)
	var body atomic.Pointer[[]byte]
	var status atomic.Int32
	status.Store(http.StatusOK)
	first := is.issue(t, 78, 90*24*time.Hour)
	body.Store(&first)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if c := int(status.Load()); c != http.StatusOK {
			w.WriteHeader(c)
			return
		}
		_, _ = w.Write(*body.Load())
	}))
	defer ts.Close()
	cfgPath := filepath.Join(dir, "pecet.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, reloadConfig, "url: "+ts.URL+"/CZ.xml, refresh: 1m"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, srv, m := startReloader(t, ctx, cfgPath, ts.Client().Transport)
	if got := inForce(t, srv); got != "78" {
		t.Fatalf("at start: sequence %s", got)
	}
	// The loop runs on the configured interval; here each refresh is
	// called as the loop calls it.
	refused := func() float64 { return gauge(t, m.Registry, "pecet_trusted_list_loads_total", "refused") }
	status.Store(http.StatusBadGateway)
	r.refresh(ctx, "cz")
	if got := inForce(t, srv); got != "78" || refused() != 1 {
		t.Fatalf("after a 502: sequence %s, refused %v", got, refused())
	}
	status.Store(http.StatusOK)
	huge := make([]byte, policy.MaxTrustedListBytes+1)
	body.Store(&huge)
	r.refresh(ctx, "cz")
	if got := inForce(t, srv); got != "78" || refused() != 2 {
		t.Fatalf("after an oversized list: sequence %s, refused %v", got, refused())
	}
	next := is.issue(t, 79, 90*24*time.Hour)
	body.Store(&next)
	r.refresh(ctx, "cz")
	if got := inForce(t, srv); got != "79" {
		t.Fatalf("after a newer issue: sequence %s", got)
	}
}
