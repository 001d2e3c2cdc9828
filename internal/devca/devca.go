// Package devca issues the development certificates: a dev CA with a software
// key, TLS server and client certificates, and certificates for keys on the
// token. It is for `pecetd --dev` (internal/devmode), tests and the hand-run
// scripts only; production certificates come from accredited CAs, and no
// other package of pecetd or pecet imports it (docs/architecture.md, rule 6).
// Certificate files are read with internal/pki, dev or production.
package devca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/pecet-hsm/pecet/internal/pki"
)

// CA is a dev CA: a software key, in the dev folder or in a test. It exists
// only so that a newcomer has certificates to try.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
var oidKPTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}

func serial() (*big.Int, error) {
	// 128 random bits, positive: unique without coordination (RFC 5280 4.1.2.2
	// allows up to 20 octets).
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// LoadOrCreateCA reads the CA from certPath/keyPath, or creates it there.
func LoadOrCreateCA(certPath, keyPath string, now time.Time) (*CA, error) {
	if exists(certPath) {
		cert, err := readCert(certPath)
		if err != nil {
			return nil, err
		}
		key, err := readKey(keyPath)
		if err != nil {
			return nil, err
		}
		return &CA{Cert: cert, Key: key}, nil
	}
	c, err := NewCA("pecet dev CA", now)
	if err != nil {
		return nil, err
	}
	if err := WriteKey(keyPath, c.Key); err != nil {
		return nil, err
	}
	if err := WriteCerts(certPath, c.Cert); err != nil {
		return nil, err
	}
	return c, nil
}

// NewCA makes a self-signed CA with an ECDSA P-256 key, valid ten years.
func NewCA(cn string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"pecet development (not trusted)"}, Country: []string{"CZ"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Kind says what a certificate is for; it sets key usage and EKU.
type Kind int

// Kinds.
const (
	TLSServer Kind = iota
	TLSClient
	CMSSign
	CMSDecrypt
	TSA
	// Audit: the audit key that signs the audit log's checkpoints.
	Audit
)

// Issue certifies pub for cn, valid two years from an hour before now.
func (c *CA) Issue(cn string, kind Kind, pub crypto.PublicKey, now time.Time) (*x509.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"pecet development"}, Country: []string{"CZ"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(2, 0, 0),
	}
	switch kind {
	case TLSServer:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	case TLSClient:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case CMSSign:
		// As qualified signing certificates: non-repudiation and digital
		// signature, e-mail protection (what `openssl cms -verify` checks).
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	case Audit:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	case CMSDecrypt:
		tmpl.KeyUsage = x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	case TSA:
		// RFC 3161 2.3: exactly one EKU, timeStamping, critical. Go marks
		// EKU non-critical, so the extension is written by hand.
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
		val, err := asn1.Marshal([]asn1.ObjectIdentifier{oidKPTimeStamping})
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: val}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, pub, c.Key)
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

// IssueKey makes a software EC P-256 key and certifies it for cn (Issue):
// a TLS pair, or a signer or TSA that a test runs itself.
func (c *CA) IssueKey(cn string, kind Kind, now time.Time) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cert, err := c.Issue(cn, kind, key.Public(), now)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

// TLSPair issues a software-key TLS certificate (chain: leaf, CA) into
// certPath/keyPath unless both exist.
func (c *CA) TLSPair(certPath, keyPath, cn string, kind Kind, now time.Time) error {
	if exists(certPath) && exists(keyPath) {
		return nil
	}
	key, cert, err := c.IssueKey(cn, kind, now)
	if err != nil {
		return err
	}
	if err := WriteKey(keyPath, key); err != nil {
		return err
	}
	return WriteCerts(certPath, cert, c.Cert)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// WriteKey writes a PKCS#8 PEM private key, mode 0600.
func WriteKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// WriteCerts writes PEM certificates, mode 0644.
func WriteCerts(path string, certs ...*x509.Certificate) error {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return os.WriteFile(path, out, 0o644) //nolint:gosec // certificates are public
}

// readCert reads the first PEM certificate of a file.
func readCert(path string) (*x509.Certificate, error) {
	certs, err := pki.ReadCertificates(path)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New(path + ": not a signing key")
	}
	return s, nil
}
