package signer

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecet-hsm/pecet/policy"
)

// ESS signing-certificate attributes (RFC 2634 5.4, RFC 5035 3). They bind
// the signer's certificate into the signed attributes, so a certificate
// with the same key but different contents cannot be substituted.

// addSigningCertificateV2 appends a SigningCertificateV2 naming leaf:
//
//	SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, ... }
//	ESSCertIDv2 ::= SEQUENCE {
//	    hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
//	    certHash OCTET STRING,
//	    issuerSerial IssuerSerial OPTIONAL }
//	IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }
func addSigningCertificateV2(b *cryptobyte.Builder, h crypto.Hash, leaf *x509.Certificate) {
	hh := h.New()
	hh.Write(leaf.Raw)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				// DER leaves out a value equal to its DEFAULT (X.690 11.5).
				if h != crypto.SHA256 {
					o, _ := digestOID(h)
					addAlgorithm(b, o, nil)
				}
				b.AddASN1OctetString(hh.Sum(nil))
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // GeneralNames
						b.AddASN1(cbasn1.Tag(4).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddBytes(leaf.RawIssuer) // directoryName [4] EXPLICIT Name
						})
					})
					b.AddASN1BigInt(leaf.SerialNumber)
				})
			})
		})
	})
}

// checkSigningCertificate compares the first ESSCertID(v2) of a
// signing-certificate attribute value with the signer's certificate. It
// returns a problem for the verdict, or an error when the value cannot be
// decoded.
func checkSigningCertificate(value []byte, v2 bool, cert *x509.Certificate) (string, error) {
	name := "signing-certificate"
	if v2 {
		name = "signing-certificate-v2"
	}
	sc, ok := oneElement(value, cbasn1.SEQUENCE)
	var ids, id cryptobyte.String
	if !ok || !sc.ReadASN1(&ids, cbasn1.SEQUENCE) || !ids.ReadASN1(&id, cbasn1.SEQUENCE) {
		return "", malformedf("%s attribute: bad encoding", name)
	}
	// Only the first identifies the signing certificate (RFC 5035 3); the
	// others may name the rest of the chain.
	h := crypto.SHA1 // ESSCertID is always SHA-1
	if v2 {
		h = crypto.SHA256
		if id.PeekASN1Tag(cbasn1.SEQUENCE) {
			alg, err := readAlgorithm(&id)
			if err != nil {
				return "", within(name+" attribute", err)
			}
			if h = hashFromDigestOID(alg.Algorithm); h == 0 {
				return "", malformedf("%s attribute: unknown hash algorithm %s", name, shortOID(alg.Algorithm))
			}
		}
	}
	var certHash []byte
	if !id.ReadASN1Bytes(&certHash, cbasn1.OCTET_STRING) {
		return "", malformedf("%s attribute: bad certHash", name)
	}
	hh := h.New()
	hh.Write(cert.Raw)
	if !bytes.Equal(hh.Sum(nil), certHash) {
		return fmt.Sprintf("the %s attribute names another certificate than the signer's", name), nil
	}
	if id.Empty() {
		return "", nil
	}
	var is, names cryptobyte.String
	serial := new(big.Int)
	if !id.ReadASN1(&is, cbasn1.SEQUENCE) || !is.ReadASN1(&names, cbasn1.SEQUENCE) ||
		!is.ReadASN1Integer(serial) || !is.Empty() || !id.Empty() {
		return "", malformedf("%s attribute: bad issuerSerial", name)
	}
	if serial.Cmp(cert.SerialNumber) != 0 {
		return fmt.Sprintf("the %s attribute names another serial number than the signer certificate's", name), nil
	}
	for !names.Empty() {
		var gn cryptobyte.String
		var tag cbasn1.Tag
		if !names.ReadAnyASN1(&gn, &tag) {
			return "", malformedf("%s attribute: bad GeneralNames", name)
		}
		// Compared as names, not bytes: signers re-encode the issuer
		// (UTF8String for the certificate's PrintableString), and the
		// certHash above already binds the certificate itself.
		if tag == cbasn1.Tag(4).Constructed().ContextSpecific() && policy.EqualNames(gn, cert.RawIssuer) {
			return "", nil
		}
	}
	return fmt.Sprintf("the %s attribute names another issuer than the signer certificate's", name), nil
}
