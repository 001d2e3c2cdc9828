package testtool

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OutsideTSA is a time-stamping authority that is not pecet: a root CA, an
// issuing CA and a TSA certificate made on the spot with the openssl
// binary, and tokens made by `openssl ts -reply`, as a qualified TSA
// elsewhere makes them. Files are PEM in Dir.
type OutsideTSA struct {
	Dir string
	// Root, Issuing and TSA are the certificates; RootKey and IssuingKey
	// sign others (e.g. a signer certificate under the same root).
	Root, Issuing, TSA  *x509.Certificate
	RootKey, IssuingKey crypto.Signer
	// RootPEM, IssuingPEM and TSAPEM are the certificate files.
	RootPEM, IssuingPEM, TSAPEM string
	config                      string
	n                           int
}

// OutsideTSAOptions shape the outside TSA's certificates.
type OutsideTSAOptions struct {
	// IssuingEKU is the issuing CA's extendedKeyUsage line (openssl
	// syntax, e.g. "emailProtection,clientAuth"); empty: none.
	IssuingEKU string
	// ChainInToken puts the issuing CA certificate into the tokens besides
	// the TSA certificate (openssl ts "certs").
	ChainInToken bool
}

// NewOutsideTSA makes the CAs and the TSA under t.TempDir().
func NewOutsideTSA(t testing.TB, o OutsideTSAOptions) *OutsideTSA {
	t.Helper()
	OpenSSL(t)
	d := t.TempDir()
	p := func(n string) string { return filepath.Join(d, n) }
	write := func(n, s string) string {
		if err := os.WriteFile(p(n), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p(n)
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"}
	RunOpenSSL(t, append(append([]string{"req", "-x509"}, ec...), "-keyout", p("root.key"), "-out", p("root.pem"), "-days", "3650",
		"-subj", "/CN=Outside Root CA/O=Outside Trust s.r.o./C=CZ",
		"-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign")...)
	issuingExt := "basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
	if o.IssuingEKU != "" {
		issuingExt += "extendedKeyUsage=" + o.IssuingEKU + "\n"
	}
	RunOpenSSL(t, append(append([]string{"req", "-new"}, ec...), "-keyout", p("issuing.key"), "-out", p("issuing.csr"),
		"-subj", "/CN=Outside Qualified CA 2/O=Outside Trust s.r.o./C=CZ")...)
	RunOpenSSL(t, "x509", "-req", "-in", p("issuing.csr"), "-CA", p("root.pem"), "-CAkey", p("root.key"), "-set_serial", "4097",
		"-days", "3000", "-extfile", write("issuing.ext", issuingExt), "-out", p("issuing.pem"))
	RunOpenSSL(t, append(append([]string{"req", "-new"}, ec...), "-keyout", p("tsa.key"), "-out", p("tsa.csr"),
		"-subj", "/CN=Outside TSA - TSU 1/OU=Time Stamping Authority/O=Outside Trust s.r.o./C=CZ")...)
	RunOpenSSL(t, "x509", "-req", "-in", p("tsa.csr"), "-CA", p("issuing.pem"), "-CAkey", p("issuing.key"), "-set_serial", "8193",
		"-days", "2000", "-extfile", write("tsa.ext", "basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature,nonRepudiation\n"+
			"extendedKeyUsage=critical,timeStamping\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"), "-out", p("tsa.pem"))
	certs := ""
	if o.ChainInToken {
		certs = "certs = " + p("issuing.pem") + "\n"
	}
	write("serial", "01\n")
	cfg := write("ts.cnf", "[ tsa ]\ndefault_tsa = outside\n[ outside ]\n"+
		"serial = "+p("serial")+"\ncrypto_device = builtin\nsigner_cert = "+p("tsa.pem")+"\n"+certs+
		"signer_key = "+p("tsa.key")+"\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.1\n"+
		"digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = no\ntsa_name = yes\n"+
		"ess_cert_id_chain = no\ness_cert_id_alg = sha256\n")
	ts := &OutsideTSA{Dir: d, RootPEM: p("root.pem"), IssuingPEM: p("issuing.pem"), TSAPEM: p("tsa.pem"), config: cfg}
	ts.Root, ts.Issuing, ts.TSA = ReadCert(t, ts.RootPEM), ReadCert(t, ts.IssuingPEM), ReadCert(t, ts.TSAPEM)
	ts.RootKey, ts.IssuingKey = readKey(t, p("root.key")), readKey(t, p("issuing.key"))
	return ts
}

// Token time-stamps a digest (sha256, sha384 or sha512 by hash) with
// `openssl ts -reply` and returns the DER TimeStampToken; the query asks
// for the certificates (-cert) and sends no nonce.
func (o *OutsideTSA) Token(t testing.TB, hash string, digest []byte) []byte {
	t.Helper()
	o.n++
	q := filepath.Join(o.Dir, fmt.Sprintf("q%d.tsq", o.n))
	tok := filepath.Join(o.Dir, fmt.Sprintf("t%d.tst", o.n))
	RunOpenSSL(t, "ts", "-query", "-digest", hex.EncodeToString(digest), "-"+strings.ToLower(hash), "-cert", "-no_nonce", "-out", q)
	RunOpenSSL(t, "ts", "-reply", "-config", o.config, "-queryfile", q, "-token_out", "-out", tok)
	b, err := os.ReadFile(tok)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Reply is Token as a whole TimeStampResp (.tsr) file; it returns the path.
func (o *OutsideTSA) Reply(t testing.TB, dataFile string) string {
	t.Helper()
	o.n++
	q := filepath.Join(o.Dir, fmt.Sprintf("q%d.tsq", o.n))
	r := filepath.Join(o.Dir, fmt.Sprintf("r%d.tsr", o.n))
	RunOpenSSL(t, "ts", "-query", "-data", dataFile, "-sha256", "-cert", "-no_nonce", "-out", q)
	RunOpenSSL(t, "ts", "-reply", "-config", o.config, "-queryfile", q, "-out", r)
	return r
}

// ReadCert reads the first certificate of a PEM file, failing the test
// when there is none: for fixtures the test itself or openssl wrote.
func ReadCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readKey(t testing.TB, path string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("%s: %T is not a signer", path, k)
	}
	return s
}
