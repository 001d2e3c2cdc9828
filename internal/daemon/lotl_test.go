package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/pki"
	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/policy"
)

// TestBuildEngineLOTLReal: a cz policy whose list's signers come from the
// real EU LOTL (its signer from the LOTL's own KeyInfo, standing in for
// the Official Journal) loads the real Czech list; another territory or
// another LOTL signer stops the start with a precise error.
func TestBuildEngineLOTLReal(t *testing.T) {
	dir := t.TempDir()
	lotl := testtool.Vectors(t, "trusted-lists", "eu-lotl.xml")
	ojPEM := listSignersPEM(t, lotl, filepath.Join(dir, "oj.pem"))
	other := filepath.Join(dir, "other.pem")
	_, otherCert := lotlKey(t)
	if err := devca.WriteCerts(other, otherCert); err != nil {
		t.Fatal(err)
	}
	cz := testtool.Vectors(t, "trusted-lists", "CZ.xml")
	for _, tc := range []struct {
		name, signer, territory, file, want string
	}{
		{"CZ through the LOTL", ojPEM, "CZ", cz, ""},
		{"the LOTL's CZ signers do not sign SK's list", ojPEM, "SK", cz, "trusted list signature invalid"},
		{"territory not in the LOTL", ojPEM, "XX", cz, `no trusted list of the territory: "XX"`},
		{"another LOTL signer", other, "CZ", cz, "names no pivot LOTLs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{DefaultPolicy: "cz", Policies: map[string]config.Policy{"cz": {
				TrustedList: &config.TrustedList{LOTL: lotl, LOTLSigner: tc.signer, Territory: tc.territory, File: tc.file},
				Revocation:  config.Revocation{Mode: "off"},
			}}}
			e, err := BuildEngine(cfg)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := e.Describe("", time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC))
			if err != nil || info.TrustedList == nil || info.TrustedList.SequenceNumber != "77" || len(info.Anchors) == 0 {
				t.Fatalf("policy %+v %v", info, err)
			}
		})
	}
}

func lotlKey(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test LOTL signer"},
		NotBefore: time.Now().AddDate(-1, 0, 0), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, c
}

// makeLOTL is the real EU LOTL announcing next for later LOTLs, pointing
// to the Czech list at czURL signed by cz, naming pivots, signed by key.
func makeLOTL(t *testing.T, key *rsa.PrivateKey, next, cz *x509.Certificate, czURL string, pivots ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(testtool.Vectors(t, "trusted-lists", "eu-lotl.xml"))
	if err != nil {
		t.Fatal(err)
	}
	swap := func(location, newLocation string, c *x509.Certificate) {
		marker := []byte("<TSLLocation>" + location + "</TSLLocation>")
		at := bytes.Index(data, marker)
		if at < 0 {
			t.Fatalf("%s not in the LOTL", location)
		}
		i := bytes.LastIndex(data[:at], []byte("<ServiceDigitalIdentities>"))
		ids := fmt.Sprintf("<ServiceDigitalIdentities><ServiceDigitalIdentity><DigitalId><X509Certificate>%s</X509Certificate></DigitalId></ServiceDigitalIdentity></ServiceDigitalIdentities><TSLLocation>%s</TSLLocation>",
			base64.StdEncoding.EncodeToString(c.Raw), newLocation)
		data = append(append(bytes.Clone(data[:i]), ids...), data[at+len(marker):]...)
	}
	swap("https://ec.europa.eu/tools/lotl/eu-lotl.xml", "https://ec.europa.eu/tools/lotl/eu-lotl.xml", next)
	swap("https://tsl.gov.cz/publ/TSL_CZ.xtsl", czURL, cz)
	var uris string
	for _, p := range pivots {
		uris += `<URI xml:lang="en">` + p + `</URI>`
	}
	data = bytes.Replace(data, []byte("<SchemeInformationURI>"), []byte("<SchemeInformationURI>"+uris), 1)
	out, err := policy.ResignTrustedList(data, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTrustedListLOTLRefreshURL: pecetd fetches the LOTL over https,
// follows its pivot from the Official Journal key to the current LOTL
// key, fetches the Czech list from where the LOTL points (no file or url
// configured) and verifies it with the key the LOTL names; a refresh
// takes a newer issue the same way, and a LOTL re-signed by a key no
// pivot announced leaves the list in force.
func TestTrustedListLOTLRefreshURL(t *testing.T) {
	dir := t.TempDir()
	is := newTLIssuer(t, dir) // writes tl-signer.pem, which the LOTL names for CZ
	tlCert, err := pki.ReadCertificates(is.signer)
	if err != nil {
		t.Fatal(err)
	}
	k0, c0 := lotlKey(t) // the Official Journal's
	k1, c1 := lotlKey(t) // the current LOTL's
	var files sync.Map
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files.Load(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(*b.(*[]byte))
	}))
	defer ts.Close()
	put := func(path string, b []byte) { files.Store(path, &b) }
	put("/pivot-1.xml", makeLOTL(t, k0, c1, tlCert[0], ts.URL+"/CZ.xml"))
	put("/lotl.xml", makeLOTL(t, k1, c1, tlCert[0], ts.URL+"/CZ.xml", ts.URL+"/pivot-1.xml"))
	put("/CZ.xml", is.issue(t, 78, 90*24*time.Hour))
	if err := devca.WriteCerts(filepath.Join(dir, "oj.pem"), c0); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pecet.yaml")
	cfg := strings.Replace(reloadConfig, "{%s, signer: tl-signer.pem}", "{lotl: "+ts.URL+"/lotl.xml, lotl_signer: oj.pem, territory: CZ, refresh: 1m}", 1)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, srv, m := startReloader(t, ctx, cfgPath, ts.Client().Transport)
	if got := inForce(t, srv); got != "78" {
		t.Fatalf("at start: sequence %s", got)
	}
	put("/CZ.xml", is.issue(t, 79, 90*24*time.Hour))
	r.refresh(ctx, "cz")
	if got := inForce(t, srv); got != "79" {
		t.Fatalf("after a refresh: sequence %s", got)
	}
	// A LOTL signed by a key no pivot announced: the list in force stays.
	k2, c2 := lotlKey(t)
	put("/lotl.xml", makeLOTL(t, k2, c2, tlCert[0], ts.URL+"/CZ.xml", ts.URL+"/pivot-1.xml"))
	put("/CZ.xml", is.issue(t, 80, 90*24*time.Hour))
	r.refresh(ctx, "cz")
	if got, refused := inForce(t, srv), gauge(t, m.Registry, "pecet_trusted_list_loads_total", "refused"); got != "79" || refused != 1 {
		t.Fatalf("after a rogue LOTL: sequence %s, refused %v", got, refused)
	}
	// At start the same LOTL is an error that names the problem.
	_, err = loadTrustedList(ctx, config.TrustedList{LOTL: ts.URL + "/lotl.xml", LOTLSigner: filepath.Join(dir, "oj.pem"), Territory: "CZ"}, ts.Client().Transport)
	if !errors.Is(err, policy.ErrLOTLPivot) || !strings.Contains(err.Error(), "newest pivot") {
		t.Fatalf("rogue LOTL: %v", err)
	}
}
