package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	slot := func(n uint) *uint { return &n }
	cases := []struct {
		in   string
		want PKCS11URI
	}{
		{"pkcs11:token=pecet", PKCS11URI{Token: "pecet"}},
		{"pkcs11:serial=4f2a9c1d", PKCS11URI{Serial: "4f2a9c1d"}},
		{"pkcs11:token=pecet;serial=4f2a9c1d", PKCS11URI{Token: "pecet", Serial: "4f2a9c1d"}},
		{"pkcs11:slot-id=3", PKCS11URI{SlotID: slot(3)}},
		// RFC 7512 section 2.3: percent-encoded values; a space in a label.
		{"pkcs11:token=Office%20HSM%3Bpart%2A", PKCS11URI{Token: "Office HSM;part*"}},
		{"pkcs11:token=pecet?pin-source=file:/etc/pecet/pin", PKCS11URI{Token: "pecet", PINSource: "/etc/pecet/pin"}},
		{"pkcs11:token=pecet?pin-source=/etc/pecet/pin&module-path=/usr/lib/libCryptoki2_64.so",
			PKCS11URI{Token: "pecet", PINSource: "/etc/pecet/pin", ModulePath: "/usr/lib/libCryptoki2_64.so"}},
		// Vendor attributes are ignored (RFC 7512 section 2.3).
		{"pkcs11:token=pecet;x-vendor=1", PKCS11URI{Token: "pecet"}},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParsePKCS11URI(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Token != c.want.Token || got.Serial != c.want.Serial || got.ModulePath != c.want.ModulePath ||
				got.PINSource != c.want.PINSource || (got.SlotID == nil) != (c.want.SlotID == nil) ||
				(got.SlotID != nil && *got.SlotID != *c.want.SlotID) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestParsePKCS11URIRejects(t *testing.T) {
	cases := []struct{ in, want string }{
		{"token=pecet", `start with "pkcs11:"`},
		{"pkcs11:", "names no token"},
		{"pkcs11:model=SoftHSM%20v2", `"model" is not supported`},
		{"pkcs11:token=a;token=b", "appears twice"},
		{"pkcs11:token", "not name=value"},
		{"pkcs11:token=%zz", "percent-encoding"},
		{"pkcs11:token=a%0Ab", "control character"},
		{"pkcs11:token=pecet?pin-value=1234", "pin-value puts the PIN"},
		{"pkcs11:token=pecet?module-name=softhsm2", "module-name"},
		{"pkcs11:token=pecet;object=client-sign", "names a key object"},
		{"pkcs11:token=pecet;pin-source=/etc/pin", "belongs in the URI's query"},
		{"pkcs11:token=pecet?serial=1", "belongs in the URI's path"},
		{"pkcs11:token=pecet?pin-source=pin", "absolute file path"},
		{"pkcs11:slot-id=-1", "not a decimal number"},
		{"pkcs11:token=" + strings.Repeat("a", 33), "longer than 32"},
		{"pkcs11:serial=" + strings.Repeat("1", 17), "longer than 16"},
		{"pkcs11:token=" + strings.Repeat("a", 5000), "longer than 4096"},
		{"pkcs11:token=", "token is empty"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, err := ParsePKCS11URI(c.in)
			if !errors.Is(err, ErrPKCS11URI) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParsePKCS11URI(%.60q) = %v, want ErrPKCS11URI naming %q", c.in, err, c.want)
			}
		})
	}
}

func FuzzParsePKCS11URI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=pecet;serial=4f2a9c1d?pin-source=file:/etc/pecet/pin",
		"pkcs11:slot-id=0?module-path=/usr/lib/softhsm/libsofthsm2.so",
		"pkcs11:token=%41%42;x-a=b?&",
		"pkcs11:;;=;token==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParsePKCS11URI(s)
		if err != nil {
			if !errors.Is(err, ErrPKCS11URI) {
				t.Fatalf("error not wrapping ErrPKCS11URI: %v", err)
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		if u.Token == "" && u.Serial == "" && u.SlotID == nil {
			t.Fatal("accepted a URI that names no token")
		}
		if len(u.Token) > 32 || len(u.Serial) > 16 {
			t.Fatalf("accepted over-long fields: %+v", u)
		}
	})
}

func TestConfigTokenURI(t *testing.T) {
	withURI := func(uri string) string {
		return strings.Replace(valid, "  label: pecet\n  pin_file: /etc/pecet/pin\n", "  uri: \""+uri+"\"\n", 1)
	}
	c, err := Parse([]byte(withURI("pkcs11:token=pecet;serial=4f2a?pin-source=file:/run/pin")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Token.Label != "pecet" || c.Token.Serial != "4f2a" || c.Token.PINFile != "/run/pin" || c.Token.Slot != nil {
		t.Fatalf("token = %+v", c.Token)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after Parse: %v", err)
	}
	rejects := []struct{ name, yaml, want string }{
		{"uri and label", strings.Replace(valid, "  label: pecet\n", "  label: pecet\n  uri: \"pkcs11:token=pecet\"\n", 1), "not both"},
		{"uri pin-source and pin_file", strings.Replace(valid, "  label: pecet\n", "  uri: \"pkcs11:token=pecet?pin-source=/p\"\n", 1), "give one"},
		{"uri module-path differs", withURI("pkcs11:token=pecet?pin-source=/p&module-path=/other.so"), "differs from token.module"},
		{"bad uri", withURI("pkcs11:token=pecet?pin-value=1"), "pin-value"},
		{"uri without PIN", withURI("pkcs11:token=pecet"), "pin_file"},
	}
	for _, r := range rejects {
		t.Run(r.name, func(t *testing.T) {
			_, err := Parse([]byte(r.yaml))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("Parse = %v, want ErrInvalid naming %q", err, r.want)
			}
		})
	}
}

// TestLoadResolvesRelativePaths: paths in a config file are relative to the
// file, whatever pecetd's working directory is (systemd starts it in /).
func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	yaml := `
grpc:
  tls: {cert: tls/server.pem, key: /abs/server-key.pem, client_ca: ca.pem, client_crl: clients.crl}
token:
  module: ./lib/libvendor.so
  label: pecet
  pin_file: pin
trust:
  anchors: [anchors/a.pem, /etc/pecet/b.pem]
clients:
  - {identity: gateway, roles: [gateway], issuer: cas/gw-ca.pem}
`
	p := filepath.Join(dir, "pecet.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// Load through a relative path from elsewhere: the file's directory
	// decides, not the working directory.
	t.Chdir(filepath.Dir(dir))
	c, err := Load(filepath.Join(filepath.Base(dir), "pecet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{c.GRPC.TLS.Cert, filepath.Join(dir, "tls/server.pem")},
		{c.GRPC.TLS.Key, "/abs/server-key.pem"},
		{c.GRPC.TLS.ClientCA, filepath.Join(dir, "ca.pem")},
		{c.GRPC.TLS.ClientCRL, filepath.Join(dir, "clients.crl")},
		{c.Clients[0].Issuer, filepath.Join(dir, "cas/gw-ca.pem")},
		{c.Token.PINFile, filepath.Join(dir, "pin")},
		{c.Token.Module, filepath.Join(dir, "lib/libvendor.so")},
		{c.Trust.Anchors[0], filepath.Join(dir, "anchors/a.pem")},
		{c.Trust.Anchors[1], "/etc/pecet/b.pem"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	// A bare library name is left to the dynamic loader.
	bare := strings.Replace(yaml, "./lib/libvendor.so", "libsofthsm2.so", 1)
	if err := os.WriteFile(p, []byte(bare), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token.Module != "libsofthsm2.so" {
		t.Fatalf("bare module name became %q", c.Token.Module)
	}
}

// TestLoadResolvesPolicyPaths: the policies' files (anchors, trusted list
// and its signer, CRLs) are relative to the config file too.
func TestLoadResolvesPolicyPaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pecet.yaml")
	if err := os.WriteFile(p, []byte(withPolicies), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	cz, dev := c.Policies["cz-qualified"], c.Policies["dev"]
	for _, tc := range []struct{ got, want string }{
		{cz.TrustedList.File, filepath.Join(dir, "CZ.xml")},
		{cz.TrustedList.Signer, filepath.Join(dir, "cz-signer.pem")},
		{cz.Revocation.CRLs[0], filepath.Join(dir, "a.crl")},
		{dev.Anchors[0], filepath.Join(dir, "ca.pem")},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
