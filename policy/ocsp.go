package policy

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

var (
	oidOCSPNonce   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
)

// DefaultOCSPMaxAge is how old (by thisUpdate) a response without
// nextUpdate may be: such a responder claims newer information is always
// available, so only a recent answer says anything (docs/security.md
// "Revocation").
const DefaultOCSPMaxAge = time.Hour

// ocspFutureSkew is how far in the future a response's thisUpdate may be
// besides the policy's clock tolerance.
const ocspFutureSkew = 5 * time.Minute

// ocspRules are a policy's rules for OCSP responses (RFC 6960).
type ocspRules struct {
	// maxAge bounds the age of responses without nextUpdate; 0 means
	// DefaultOCSPMaxAge.
	maxAge time.Duration
	tol    time.Duration
	// noNonce: send no nonce and accept responses without one, for
	// responders that serve pre-produced responses (RFC 5019); replay
	// protection then rests on nextUpdate and maxAge.
	noNonce bool
	// responderStatus says why a delegated responder's certificate without
	// id-pkix-ocsp-nocheck is not known to be unrevoked now ("" when it
	// is good). nil: such responders are refused.
	responderStatus func(responder, issuer *x509.Certificate) string
	// now is the time a response's currency and its responder's validity
	// are judged at: the engine's clock or Request.Now, never the wall
	// clock of the fetch (docs/security.md "Revocation and proof of
	// existence"). Zero: the Fetcher's clock.
	now time.Time
}

// ocspRequest builds an OCSP request for c, with a nonce unless nonce is
// nil (RFC 6960 4.1, RFC 8954); x/crypto/ocsp writes requests without
// extensions.
func ocspRequest(c, issuer *x509.Certificate, nonce []byte) ([]byte, error) {
	plain, err := ocsp.CreateRequest(c, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil || nonce == nil {
		return plain, err
	}
	// plain = OCSPRequest{ TBSRequest{ requestList } }: take the request
	// list and add requestExtensions [2].
	s := cryptobyte.String(plain)
	var req, tbs, list cryptobyte.String
	if !s.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("unexpected OCSP request encoding")
	}
	nonceOctets, _ := asn1.Marshal(nonce)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(list)
			b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidOCSPNonce)
						b.AddASN1OctetString(nonceOctets)
					})
				})
			})
		})
	})
	return b.Bytes()
}

// checkOCSP verifies a response (RFC 6960):
//   - signed by the issuer, or by a delegated responder that the issuer
//     certified (x/crypto/ocsp checks that signature), with
//     id-kp-OCSPSigning, valid now (the time of use), and
//     either carrying id-pkix-ocsp-nocheck or not revoked (4.2.2.2,
//     4.2.2.2.1);
//   - about this certificate (ParseResponseForCert matches the serial);
//   - echoing the nonce pecet sent (a response without it could be a
//     replay; RFC 8954), unless the policy sends none;
//   - fresh: nextUpdate not passed, or, without nextUpdate, thisUpdate
//     within the maximum age; thisUpdate not in the future.
func checkOCSP(data []byte, c, issuer *x509.Certificate, nonce []byte, at, now time.Time, rules *ocspRules) (revStatus, error) {
	if rules == nil {
		rules = &ocspRules{}
	}
	resp, err := ocsp.ParseResponseForCert(data, c, issuer)
	if err != nil {
		return revStatus{}, fmt.Errorf("%w: %w", errOCSPParse, err)
	}
	if rc := resp.Certificate; rc != nil && !bytes.Equal(rc.Raw, issuer.Raw) {
		if err := checkResponder(rc, issuer, now, rules); err != nil {
			return revStatus{}, err
		}
	}
	var got []byte
	for _, e := range resp.Extensions {
		if e.Id.Equal(oidOCSPNonce) {
			got = e.Value
		}
	}
	switch {
	case got != nil:
		var n []byte
		if _, err := asn1.Unmarshal(got, &n); err != nil || !bytes.Equal(n, nonce) {
			// Some responders echo the raw value; accept that form too.
			if !bytes.Equal(got, nonce) {
				return revStatus{}, errors.New("OCSP nonce mismatch (replayed response?)")
			}
		}
	case nonce != nil:
		return revStatus{}, errors.New("the OCSP response does not echo pecet's nonce (a replay cannot be ruled out); for responders that serve pre-produced responses set the policy's revocation.ocsp_nonce: false")
	}
	tol := rules.tol
	if resp.ThisUpdate.After(now.Add(tol + ocspFutureSkew)) {
		return revStatus{}, errors.New("OCSP response from the future")
	}
	if resp.NextUpdate.IsZero() {
		maxAge := rules.maxAge
		if maxAge <= 0 {
			maxAge = DefaultOCSPMaxAge
		}
		if resp.ThisUpdate.Add(maxAge + tol).Before(now) {
			return revStatus{}, fmt.Errorf("OCSP response without nextUpdate is older than %v (thisUpdate %s)", maxAge, resp.ThisUpdate.UTC().Format(time.RFC3339))
		}
	} else if resp.NextUpdate.Add(tol).Before(now) {
		return revStatus{}, errors.New("OCSP response is stale")
	}
	switch resp.Status {
	case ocsp.Good:
		return revStatus{}, nil
	case ocsp.Revoked:
		if resp.RevokedAt.After(at) {
			return revStatus{}, nil
		}
		return revStatus{revoked: true, when: resp.RevokedAt, reason: resp.RevocationReason}, nil
	}
	return revStatus{}, errors.New("OCSP responder does not know the certificate")
}

// checkResponder applies RFC 6960 4.2.2.2 to a delegated responder's
// certificate; x/crypto/ocsp has already checked that issuer signed it.
func checkResponder(rc, issuer *x509.Certificate, now time.Time, rules *ocspRules) error {
	authorised := false
	for _, u := range rc.ExtKeyUsage {
		if u == x509.ExtKeyUsageOCSPSigning {
			authorised = true
		}
	}
	if !authorised {
		return errors.New("OCSP responder certificate lacks id-kp-OCSPSigning")
	}
	if err := rc.CheckSignatureFrom(issuer); err != nil {
		return errors.New("OCSP responder certificate is not issued by the certificate's CA")
	}
	// Valid at the time of use: an expired responder key is no longer
	// covered by the CA's revocation service.
	if now.Add(rules.tol).Before(rc.NotBefore) || now.Add(-rules.tol).After(rc.NotAfter) {
		return fmt.Errorf("OCSP responder certificate not valid now (valid %s to %s)",
			rc.NotBefore.UTC().Format(time.RFC3339), rc.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, e := range rc.Extensions {
		if e.Id.Equal(oidOCSPNoCheck) {
			return nil // the CA vouches for it for its lifetime
		}
	}
	why := "no way to check it"
	if rules.responderStatus != nil {
		why = rules.responderStatus(rc, issuer)
	}
	if why != "" {
		return fmt.Errorf("OCSP responder certificate has no id-pkix-ocsp-nocheck and its revocation status is not good: %s", why)
	}
	return nil
}
