package authz

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pecet-hsm/pecet/internal/pki"
)

// Errors of the client-certificate revocation check; the TLS handshake
// fails with them (the client sees a TLS alert, the server log the cause).
var (
	// ErrRevoked: the client certificate is on its issuer's CRL.
	ErrRevoked = errors.New("authz: client certificate revoked")
	// ErrCRLUnverified: grpc.tls.client_crl has a CRL naming the client
	// certificate's issuer, but none verifies with that issuer's key, so
	// the certificate's status is unknown: refused (fail closed).
	ErrCRLUnverified = errors.New("authz: the client CRL for this certificate's issuer does not verify")
)

// MaxCRLFile bounds grpc.tls.client_crl: the CRLs of a few client CAs are
// kilobytes to a few megabytes.
const MaxCRLFile = 32 << 20

// crlRecheck is how often the handshake path looks at the CRL file's
// modification time and size (a stat, no read) to pick up a new CRL.
const crlRecheck = 10 * time.Second

// ClientCRL refuses, in the TLS handshake, client certificates listed on
// their issuer's CRL (grpc.tls.client_crl). Only the client's own
// certificate is checked, against the CRLs naming its issuer; a client
// whose issuer has no CRL in the file is not checked. The file is read at
// start (a file that does not load stops pecetd) and again when it
// changes; a changed file that does not load is logged and the last good
// CRLs stay in force. A CRL past its nextUpdate is still used (its
// entries remain revoked) and logged as stale at each load.
type ClientCRL struct {
	path      string
	clientCAs []*x509.Certificate
	log       *slog.Logger
	onDeny    func(identity string, err error)
	now       func() time.Time

	mu      sync.Mutex
	crls    []loadedCRL
	modTime time.Time
	size    int64
	checked time.Time
}

type loadedCRL struct {
	crl     *x509.RevocationList
	revoked map[string]bool // serial numbers, big-endian bytes
}

// LoadCRL reads the CRL file. clientCAs are grpc.tls.client_ca's
// certificates: a CRL naming one of them must verify with it. onDeny
// (optional) is told of each refused handshake, for the audit log.
func LoadCRL(path string, clientCAs []*x509.Certificate, log *slog.Logger, onDeny func(identity string, err error)) (*ClientCRL, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &ClientCRL{path: path, clientCAs: clientCAs, log: log, onDeny: onDeny, now: time.Now}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads and checks the file and, if it is good, replaces the CRLs.
func (c *ClientCRL) reload() error {
	st, err := os.Stat(c.path)
	if err != nil {
		return err
	}
	data, err := pki.ReadFile(c.path, MaxCRLFile)
	if err != nil {
		return err
	}
	crls, err := parseCRLs(data)
	if err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	now := c.now()
	for i, l := range crls {
		for _, ca := range c.clientCAs {
			if bytes.Equal(l.crl.RawIssuer, ca.RawSubject) {
				if err := l.crl.CheckSignatureFrom(ca); err != nil {
					return fmt.Errorf("%s: CRL %d names the client CA %q but does not verify with it: %w", c.path, i+1, ca.Subject, err)
				}
			}
		}
		if !l.crl.NextUpdate.IsZero() && now.After(l.crl.NextUpdate) {
			c.log.Warn("client CRL is past its nextUpdate; still enforced, publish a new one", "file", c.path, "issuer", l.crl.Issuer.String(), "next_update", l.crl.NextUpdate)
		}
	}
	c.mu.Lock()
	c.crls, c.modTime, c.size, c.checked = crls, st.ModTime(), st.Size(), now
	c.mu.Unlock()
	c.log.Info("client CRL loaded", "file", c.path, "crls", len(crls))
	return nil
}

// parseCRLs takes PEM "X509 CRL" blocks, or one DER CRL.
func parseCRLs(data []byte) ([]loadedCRL, error) {
	var ders [][]byte
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "X509 CRL" {
			ders = append(ders, blk.Bytes)
		}
	}
	if len(ders) == 0 {
		if bytes.Contains(data, []byte("-----BEGIN")) {
			return nil, errors.New("no X509 CRL block in the PEM file")
		}
		ders = [][]byte{data}
	}
	out := make([]loadedCRL, 0, len(ders))
	for i, der := range ders {
		crl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i+1, err)
		}
		l := loadedCRL{crl: crl, revoked: make(map[string]bool, len(crl.RevokedCertificateEntries))}
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber != nil {
				l.revoked[string(e.SerialNumber.Bytes())] = true
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// current returns the CRLs in force, re-reading the file first when it
// changed (looked at no more often than crlRecheck).
func (c *ClientCRL) current() []loadedCRL {
	now := c.now()
	c.mu.Lock()
	stale := now.Sub(c.checked) >= crlRecheck
	if stale {
		c.checked = now
	}
	crls, mod, size := c.crls, c.modTime, c.size
	c.mu.Unlock()
	if stale {
		if st, err := os.Stat(c.path); err != nil {
			c.log.Error("client CRL cannot be read; the last good one stays in force", "file", c.path, "err", err)
		} else if !st.ModTime().Equal(mod) || st.Size() != size {
			if err := c.reload(); err != nil {
				c.log.Error("client CRL changed but does not load; the last good one stays in force", "file", c.path, "err", err)
			} else {
				c.mu.Lock()
				crls = c.crls
				c.mu.Unlock()
			}
		}
	}
	return crls
}

// VerifyConnection is for tls.Config.VerifyConnection on the server: it
// runs after the chain is verified and fails the handshake for a revoked
// client certificate.
func (c *ClientCRL) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil // no client certificate: ClientAuth decides
	}
	err := c.check(cs.VerifiedChains[0])
	if err != nil && c.onDeny != nil {
		name := "(no CN or URI)"
		if ids := Identities(cs.VerifiedChains[0][0]); len(ids) > 0 {
			name = ids[len(ids)-1]
		}
		c.onDeny(name, err)
	}
	return err
}

func (c *ClientCRL) check(chain []*x509.Certificate) error {
	leaf := chain[0]
	if len(chain) < 2 {
		return nil // a client_ca certificate presented itself: no issuer's CRL
	}
	issuer := chain[1]
	named := false
	for _, l := range c.current() {
		if !bytes.Equal(l.crl.RawIssuer, leaf.RawIssuer) {
			continue
		}
		named = true
		if l.crl.CheckSignatureFrom(issuer) != nil {
			continue // another CA of the same name, or a bad CRL
		}
		if l.revoked[string(leaf.SerialNumber.Bytes())] {
			return fmt.Errorf("%w: serial %s, issuer %q", ErrRevoked, leaf.SerialNumber, leaf.Issuer)
		}
		return nil
	}
	if named {
		return fmt.Errorf("%w: issuer %q", ErrCRLUnverified, leaf.Issuer)
	}
	return nil
}
