// Package pki is the one reader of certificate files (PEM, bounded in
// size), which pecetd and pecet use for any certificate or CRL file, dev or
// production. The development certificates are issued by internal/devca.
package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
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
	return Blocks(data, "CERTIFICATE")
}

// Blocks returns the contents of every PEM block of data whose type is one
// of types (any type when none is given), in order and unparsed.
func Blocks(data []byte, types ...string) [][]byte {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			return out
		}
		if len(types) == 0 || slices.Contains(types, blk.Type) {
			out = append(out, blk.Bytes)
		}
	}
}

// IsDER reports whether data is one DER (or definite-length BER) SEQUENCE
// spanning the whole input: the envelope of a certificate, CRL or CMS
// message, judged without parsing what is inside.
func IsDER(data []byte) bool {
	s := cryptobyte.String(data)
	var seq cryptobyte.String
	return s.ReadASN1(&seq, cbasn1.SEQUENCE) && s.Empty()
}

// IsPEM reports whether data is PEM: it has a "-----BEGIN" line (files often
// carry text before it, as openssl x509 -text writes) and is not itself one
// DER SEQUENCE (a DER message whose content is a PEM file is DER).
func IsPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN")) && !IsDER(data)
}

// DecodeOne returns the DER of the one object of a PEM or DER file: the
// first PEM block of one of types (any type when none is given), or data
// itself when it is one DER SEQUENCE. name (a file name) leads every error.
func DecodeOne(name string, data []byte, types ...string) ([]byte, error) {
	if !IsPEM(data) {
		if !IsDER(data) {
			return nil, fmt.Errorf("%s: neither PEM nor DER", name)
		}
		return data, nil
	}
	blocks := Blocks(data, types...)
	if len(blocks) == 0 {
		if len(types) == 0 {
			return nil, fmt.Errorf("%s: bad PEM", name)
		}
		return nil, fmt.Errorf("%s: no PEM %q block", name, strings.Join(types, `" or "`))
	}
	return blocks[0], nil
}

// CertificatesDER returns the certificates of a PEM or DER file, unparsed:
// every CERTIFICATE block of PEM data, or data itself when it is one DER
// SEQUENCE. For certificates another party judges (a certificate Go's
// parser refuses may still be a verdict to give, not an input error); name
// leads every error, and no certificate at all is one.
func CertificatesDER(name string, data []byte) ([][]byte, error) {
	if !IsPEM(data) {
		if !IsDER(data) {
			return nil, fmt.Errorf("%s: neither PEM nor a DER certificate", name)
		}
		return [][]byte{data}, nil
	}
	blocks := CertificateBlocks(data)
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificates", name)
	}
	return blocks, nil
}

// ParseCertificateFile parses the certificates of a PEM or DER file (every
// CERTIFICATE block, or one DER certificate), as ParseCertificates does for
// PEM.
func ParseCertificateFile(name string, data []byte) ([]*x509.Certificate, error) {
	if IsPEM(data) {
		return ParseCertificates(name, data)
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: neither PEM nor a DER certificate: %w", name, err)
	}
	return []*x509.Certificate{c}, nil
}

// PublicKeys returns the public keys of PEM data (DER is refused): the key of its first
// CERTIFICATE block (the leaf: the CA keys of a chain after it are not the
// holder's) and of every PUBLIC KEY block. name leads every error; no key
// at all is one.
func PublicKeys(name string, data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	if !IsPEM(data) {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE or PUBLIC KEY in it", name)
	}
	if certs := CertificateBlocks(data); len(certs) > 0 {
		c, err := x509.ParseCertificate(certs[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		keys = append(keys, c.PublicKey)
	}
	for _, der := range Blocks(data, "PUBLIC KEY") {
		k, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE or PUBLIC KEY in it", name)
	}
	return keys, nil
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
