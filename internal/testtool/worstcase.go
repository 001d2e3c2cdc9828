package testtool

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync/atomic"
	"testing"
	"time"
)

// WorstCase is the most expensive verification request found at the
// server's caps (docs/security.md "Work budget per verification").
type WorstCase struct {
	Leaf          *x509.Certificate
	Intermediates []*x509.Certificate
	Anchors       []*x509.Certificate
	// CRLs are DER.
	CRLs [][]byte
}

// WorstCaseSize says how big a WorstCase is: anchors (of which P521 have
// P-521 keys of their own), intermediates, CRLs, and distribution points
// in the leaf and in each intermediate (64 at most are parsed).
type WorstCaseSize struct {
	Anchors, P521, Intermediates, CRLs, LeafDPs, InterDPs int
}

var worstSerial atomic.Int64

// BuildWorstCase makes a WorstCase valid at now: every certificate is
// named "Mesh" and issued by "Mesh", so every intermediate is a candidate
// issuer of every other and of the leaf; the intermediates form a mesh of
// self-issued cross-certificates under one P-521 key; one anchor verifies
// the mesh, the others have keys of their own; each CRL is signed by a
// CRL signer inside the mesh and revokes it, so the signer's path fails
// only after its own revocation was checked, at every depth; the leaf and
// the intermediates carry many distribution points. With revocation
// required every path fails late and the next one is tried.
func BuildWorstCase(t testing.TB, now time.Time, size WorstCaseSize) WorstCase {
	t.Helper()
	name := pkix.Name{CommonName: "Mesh", Organization: []string{"pecet test"}}
	genKey := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	meshKey := genKey(elliptic.P521())
	tmpl := func(ca bool, dps int, tag string) *x509.Certificate {
		c := &x509.Certificate{
			SerialNumber:          big.NewInt(worstSerial.Add(1)),
			Subject:               name,
			NotBefore:             now.AddDate(-1, 0, 0),
			NotAfter:              now.AddDate(1, 0, 0),
			BasicConstraintsValid: true,
			IsCA:                  ca,
			KeyUsage:              x509.KeyUsageDigitalSignature,
		}
		if ca {
			c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		}
		for i := range dps {
			c.CRLDistributionPoints = append(c.CRLDistributionPoints, fmt.Sprintf("ldap://dp%s%d/c", tag, i))
		}
		return c
	}
	mk := func(tpl *x509.Certificate, pub any, signer crypto.Signer, parent *x509.Certificate) *x509.Certificate {
		if parent == nil {
			parent = tpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var w WorstCase
	w.Anchors = []*x509.Certificate{mk(tmpl(true, 0, ""), meshKey.Public(), meshKey, nil)}
	for len(w.Anchors) < size.Anchors {
		k := genKey(elliptic.P256())
		if len(w.Anchors) <= size.P521 {
			// The most expensive key to verify with; distinct keys
			// defeat the signature cache.
			k = genKey(elliptic.P521())
		}
		w.Anchors = append(w.Anchors, mk(tmpl(true, 0, ""), k.Public(), k, nil))
	}
	var crlKeys []crypto.Signer
	for i := 0; i < size.CRLs && len(w.Intermediates) < size.Intermediates; i++ {
		k := genKey(elliptic.P256())
		crlKeys = append(crlKeys, k)
		w.Intermediates = append(w.Intermediates, mk(tmpl(true, size.InterDPs, "i"), k.Public(), meshKey, w.Anchors[0]))
	}
	for len(w.Intermediates) < size.Intermediates {
		w.Intermediates = append(w.Intermediates, mk(tmpl(true, size.InterDPs, "i"), meshKey.Public(), meshKey, w.Anchors[0]))
	}
	w.Leaf = mk(tmpl(false, size.LeafDPs, "l"), genKey(elliptic.P256()).Public(), meshKey, w.Anchors[0])
	for i := 0; i < size.CRLs && len(crlKeys) > 0; i++ {
		signer := w.Intermediates[i%len(crlKeys)]
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(int64(i + 1)), ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour),
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: signer.SerialNumber, RevocationTime: now.Add(-2 * time.Hour), ReasonCode: 1}},
		}, signer, crlKeys[i%len(crlKeys)])
		if err != nil {
			t.Fatal(err)
		}
		w.CRLs = append(w.CRLs, der)
	}
	return w
}

// Bytes is the size of the certificates and CRLs.
func (w WorstCase) Bytes() int {
	n := len(w.Leaf.Raw)
	for _, c := range append(append([]*x509.Certificate{}, w.Intermediates...), w.Anchors...) {
		n += len(c.Raw)
	}
	for _, c := range w.CRLs {
		n += len(c)
	}
	return n
}
