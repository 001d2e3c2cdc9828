package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/miekg/pkcs11"
)

// How a key version maps onto token objects (see doc.go):
//
//	private key   CKO_PRIVATE_KEY  CKA_LABEL=alias CKA_ID="3"
//	public key    CKO_PUBLIC_KEY   CKA_LABEL=alias CKA_ID="3"
//	leaf cert     CKO_CERTIFICATE  CKA_LABEL=alias CKA_ID="3"   category 1 (token user)
//	issuer n≥1    CKO_CERTIFICATE  CKA_LABEL=alias CKA_ID="3/n" category 2 (authority)
//	metadata      CKO_DATA         CKA_LABEL=alias CKA_APPLICATION="pecet"
const appName = "pecet"

// Certificate categories of PKCS#11 v2.40 §4.6.
const (
	certCategoryTokenUser = 1
	certCategoryAuthority = 2
)

func versionID(v int) []byte               { return []byte(strconv.Itoa(v)) }
func chainID(v, n int) []byte              { return []byte(strconv.Itoa(v) + "/" + strconv.Itoa(n)) }
func attr(t uint, v any) *pkcs11.Attribute { return pkcs11.NewAttribute(t, v) }

// findObjects returns every object matching tmpl.
func findObjects(p p11, sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return nil, p11Error("C_FindObjectsInit", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := p.FindObjects(sh, 64)
		if err != nil {
			_ = p.FindObjectsFinal(sh)
			return nil, p11Error("C_FindObjects", err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := p.FindObjectsFinal(sh); err != nil {
		return nil, p11Error("C_FindObjectsFinal", err)
	}
	return all, nil
}

// getAttrs reads the listed attributes of one object, in order.
func getAttrs(p p11, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, types ...uint) ([][]byte, error) {
	tmpl := make([]*pkcs11.Attribute, len(types))
	for i, t := range types {
		tmpl[i] = attr(t, nil)
	}
	got, err := p.GetAttributeValue(sh, o, tmpl)
	if err != nil {
		return nil, p11Error("C_GetAttributeValue", err)
	}
	out := make([][]byte, len(types))
	for i, a := range got {
		out[i] = a.Value
	}
	return out, nil
}

// Named curves by their DER-encoded OID, as CKA_EC_PARAMS carries them.
var (
	oidP256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384 = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
)

func curveParams(a Algorithm) ([]byte, error) {
	switch a {
	case ECP256:
		return asn1.Marshal(oidP256)
	case ECP384:
		return asn1.Marshal(oidP384)
	}
	return nil, fmt.Errorf("%w: %s is not an EC algorithm", ErrUnsupportedAlgorithm, a)
}

// readPublicKey builds the Go public key from a CKO_PUBLIC_KEY object.
func readPublicKey(p p11, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	kt, err := getAttrs(p, sh, o, pkcs11.CKA_KEY_TYPE)
	if err != nil {
		return nil, err
	}
	switch bytesToUint(kt[0]) {
	case pkcs11.CKK_RSA:
		v, err := getAttrs(p, sh, o, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return nil, err
		}
		e := new(big.Int).SetBytes(v[1])
		if len(v[0]) == 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, errors.New("keystore: token returned a malformed RSA public key")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(v[0]), E: int(e.Int64())}, nil
	case pkcs11.CKK_EC:
		v, err := getAttrs(p, sh, o, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
		if err != nil {
			return nil, err
		}
		return parseECPoint(v[0], v[1])
	}
	return nil, fmt.Errorf("%w: key type %#x on token", ErrUnsupportedAlgorithm, bytesToUint(kt[0]))
}

// parseECPoint decodes CKA_EC_PARAMS (a named-curve OID) and CKA_EC_POINT.
// v2.40 says CKA_EC_POINT is the DER OCTET STRING wrapping the uncompressed
// point; some older modules return the bare point, which is accepted too.
func parseECPoint(params, point []byte) (*ecdsa.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) > 0 {
		return nil, errors.New("keystore: token returned malformed CKA_EC_PARAMS")
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidP256):
		curve = elliptic.P256()
	case oid.Equal(oidP384):
		curve = elliptic.P384()
	default:
		return nil, fmt.Errorf("%w: curve %s", ErrUnsupportedAlgorithm, oid)
	}
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 {
		raw = point
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("keystore: token returned a malformed EC point: %w", err)
	}
	return pub, nil
}

// bytesToUint decodes a CK_ULONG attribute, which the module returns in the
// platform's byte order.
func bytesToUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0) // no valid CK_ULONG: matches no key type
}
