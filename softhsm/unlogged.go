package softhsm

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/pecet-hsm/pecet/keystore"
)

// What another process sharing the token directory can do without the PIN
// (docs/security.md "Certificates on the token"). A process's PKCS#11 login
// covers all its sessions, so these run in a child process: the test binary
// itself, started again with only TestUnloggedHelper selected, which each
// package using them defines as
//
//	func TestUnloggedHelper(t *testing.T) { softhsm.UnloggedHelper(t) }
const (
	// UnloggedCountCerts prints the number of certificate objects with the
	// alias's label that a session without login sees.
	UnloggedCountCerts = "count-certs"
	// UnloggedReplaceCert destroys the visible certificate objects of a
	// version and writes DER as a public certificate object in their place.
	UnloggedReplaceCert = "replace-cert"
	// UnloggedReplacePublicKey destroys the visible public key object of a
	// version and writes the RSA key of the certificate DER in its place.
	UnloggedReplacePublicKey = "replace-pubkey"
)

const unloggedEnv = "PECET_TEST_UNLOGGED"

// RunUnlogged runs one action (Unlogged*) on cfg's token from a child
// process that never logs in, and returns its one-line answer.
func RunUnlogged(t testing.TB, cfg keystore.Config, action, alias string, version int, der []byte) string {
	t.Helper()
	arg := strings.Join([]string{action, cfg.ModulePath, cfg.TokenLabel, alias, strconv.Itoa(version), base64.StdEncoding.EncodeToString(der)}, " ")
	//nolint:gosec // re-runs this test binary itself (os.Args[0]) with a fixed test name
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnloggedHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), unloggedEnv+"="+arg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unlogged %s: %v\n%s", action, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if a, ok := strings.CutPrefix(line, "unlogged: "); ok {
			return a
		}
	}
	t.Fatalf("unlogged %s: no answer (is TestUnloggedHelper defined?)\n%s", action, out)
	return ""
}

// UnloggedHelper is the child's side of RunUnlogged; it skips unless
// started by RunUnlogged.
func UnloggedHelper(t *testing.T) {
	arg := os.Getenv(unloggedEnv)
	if arg == "" {
		t.Skip("runs only as the child process of softhsm.RunUnlogged")
	}
	f := strings.Split(arg, " ")
	if len(f) != 6 {
		t.Fatalf("%s: %d fields", unloggedEnv, len(f))
	}
	version, _ := strconv.Atoi(f[4])
	der, err := base64.StdEncoding.DecodeString(f[5])
	if err != nil {
		t.Fatal(err)
	}
	answer, err := unlogged(f[0], f[1], f[2], f[3], version, der)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("unlogged: " + answer)
}

func unlogged(action, module, label, alias string, version int, der []byte) (string, error) {
	p := pkcs11.New(module)
	if p == nil {
		return "", fmt.Errorf("cannot load %s", module)
	}
	if err := p.Initialize(); err != nil {
		return "", err
	}
	defer func() { _ = p.Finalize() }()
	slots, err := p.GetSlotList(true)
	if err != nil {
		return "", err
	}
	slot, found := uint(0), false
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && ti.Label == label {
			slot, found = s, true
		}
	}
	if !found {
		return "", fmt.Errorf("no token %q", label)
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return "", err
	}
	defer func() { _ = p.CloseSession(sh) }()
	find := func(class uint, id bool) ([]pkcs11.ObjectHandle, error) {
		tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, class), pkcs11.NewAttribute(pkcs11.CKA_LABEL, alias)}
		if id {
			tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, strconv.Itoa(version)))
		}
		if err := p.FindObjectsInit(sh, tmpl); err != nil {
			return nil, err
		}
		defer func() { _ = p.FindObjectsFinal(sh) }()
		hs, _, err := p.FindObjects(sh, 100)
		return hs, err
	}
	replace := func(class uint, attrs []*pkcs11.Attribute) (string, error) {
		hs, err := find(class, true)
		if err != nil {
			return "", err
		}
		for _, h := range hs {
			if err := p.DestroyObject(sh, h); err != nil {
				return "", err
			}
		}
		base := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, alias),
			pkcs11.NewAttribute(pkcs11.CKA_ID, strconv.Itoa(version)),
		}
		if _, err := p.CreateObject(sh, append(base, attrs...)); err != nil {
			return "", err
		}
		return fmt.Sprintf("replaced %d", len(hs)), nil
	}
	switch action {
	case UnloggedCountCerts:
		hs, err := find(pkcs11.CKO_CERTIFICATE, false)
		return fmt.Sprintf("certs %d", len(hs)), err
	case UnloggedReplaceCert:
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", err
		}
		return replace(pkcs11.CKO_CERTIFICATE, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
			pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, c.RawSubject),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, der),
		})
	case UnloggedReplacePublicKey:
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", err
		}
		pub, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			return "", errors.New("replace-pubkey: RSA keys only")
		}
		return replace(pkcs11.CKO_PUBLIC_KEY, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		})
	}
	return "", fmt.Errorf("unknown action %q", action)
}
