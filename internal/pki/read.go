// Package pki is the one reader of certificate files (PEM, bounded in
// size), which pecetd and pecet use for any certificate or CRL file, dev or
// production. The development certificates are issued by internal/devca.
package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
)

// MaxCertificateFile bounds a certificate file read by ReadCertificates and
// ReadPool: a bundle of trust anchors is kilobytes, so anything near this is
// a wrong path, not a certificate file.
const MaxCertificateFile = 16 << 20

// ReadFile reads a file of at most limit bytes. An oversized file is refused
// by its size before it is read, so a wrong path to a huge file costs nothing.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	// Stat can lie (pipes, /proc): the bounded read decides.
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// CertificateBlocks returns the contents of every CERTIFICATE block of PEM
// data, in order and unparsed; other block types (keys, CRLs) are skipped.
func CertificateBlocks(data []byte) [][]byte {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return out
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
}

// ParseCertificates parses every CERTIFICATE block of PEM data. name (a file
// name) leads every error, so that a bad bundle in a config is found at once;
// no certificate at all is an error.
func ParseCertificates(name string, data []byte) ([]*x509.Certificate, error) {
	blocks := CertificateBlocks(data)
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificates", name)
	}
	out := make([]*x509.Certificate, 0, len(blocks))
	for i, der := range blocks {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", name, i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ReadCertificates reads every certificate of PEM files (at most
// MaxCertificateFile bytes each), in order. Each file must hold at least one.
func ReadCertificates(paths ...string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		data, err := ReadFile(p, MaxCertificateFile)
		if err != nil {
			return nil, err
		}
		certs, err := ParseCertificates(p, data)
		if err != nil {
			return nil, err
		}
		out = append(out, certs...)
	}
	return out, nil
}

// ReadPool reads every certificate of PEM files into a pool, as
// ReadCertificates does.
func ReadPool(paths ...string) (*x509.CertPool, error) {
	certs, err := ReadCertificates(paths...)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
