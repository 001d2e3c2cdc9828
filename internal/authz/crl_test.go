package authz

import (
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
)

func newCAForFuzz() (*devca.CA, error) { return devca.NewCA("fuzz CA", time.Now()) }

// FuzzParseCRLs: the CRL file reader never panics, and what it returns
// has a revocation map per CRL. The file is bounded by MaxCRLFile before
// it is parsed (reload).
func FuzzParseCRLs(f *testing.F) {
	ca, err := newCAForFuzz()
	if err == nil {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big1(), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, ca.Cert, ca.Key)
		if err == nil {
			f.Add(der)
			f.Add(pemCRL(der))
		}
	}
	f.Add([]byte("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		crls, err := parseCRLs(data)
		if err != nil {
			return
		}
		for _, l := range crls {
			if l.crl == nil || l.revoked == nil {
				t.Fatal("CRL without its revocation map")
			}
		}
	})
}
