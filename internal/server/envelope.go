package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
)

type envelopeService struct {
	pecetv1.UnimplementedEnvelopeServiceServer
	s *Server
}

var ciphers = map[pecetv1.ContentCipher]envelope.Cipher{
	// Unspecified is the library's default: AES-256-GCM for Encrypt,
	// AES-256-CBC for EncryptStream (GCM is not streamed).
	pecetv1.ContentCipher_CONTENT_CIPHER_UNSPECIFIED: "",
	pecetv1.ContentCipher_AES_256_CBC:                envelope.AES256CBC,
	pecetv1.ContentCipher_AES_128_CBC:                envelope.AES128CBC,
	pecetv1.ContentCipher_AES_256_GCM:                envelope.AES256GCM,
	pecetv1.ContentCipher_AES_128_GCM:                envelope.AES128GCM,
}

var transports = map[pecetv1.KeyTransport]envelope.KeyTransport{
	pecetv1.KeyTransport_KEY_TRANSPORT_UNSPECIFIED: envelope.RSAOAEP,
	pecetv1.KeyTransport_RSA_OAEP:                  envelope.RSAOAEP,
	pecetv1.KeyTransport_RSA_OAEP_SHA1:             envelope.RSAOAEPSHA1,
	pecetv1.KeyTransport_RSA_PKCS1:                 envelope.RSAPKCS1,
}

func cipherProto(c envelope.Cipher) pecetv1.ContentCipher {
	for k, v := range ciphers {
		if v == c && k != pecetv1.ContentCipher_CONTENT_CIPHER_UNSPECIFIED {
			return k
		}
	}
	return pecetv1.ContentCipher_CONTENT_CIPHER_UNSPECIFIED
}

func transportProto(kt envelope.KeyTransport) pecetv1.KeyTransport {
	for k, v := range transports {
		if v == kt && k != pecetv1.KeyTransport_KEY_TRANSPORT_UNSPECIFIED {
			return k
		}
	}
	return pecetv1.KeyTransport_KEY_TRANSPORT_UNSPECIFIED
}

func (es *envelopeService) Encrypt(ctx context.Context, req *pecetv1.EncryptRequest) (*pecetv1.EncryptResponse, error) {
	c, ok := ciphers[req.GetCipher()]
	if !ok {
		return nil, grpcerr.InvalidArgument("unknown cipher: use AES_256_CBC, AES_128_CBC, AES_256_GCM or AES_128_GCM")
	}
	kt, ok := transports[req.GetKeyTransport()]
	if !ok {
		return nil, grpcerr.InvalidArgument("unknown key transport: use RSA_OAEP, RSA_OAEP_SHA1 or RSA_PKCS1")
	}
	if len(req.GetData()) == 0 {
		return nil, grpcerr.InvalidArgument("data is empty: nothing to encrypt")
	}
	lim := es.s.d.Envelope
	certs, err := es.recipients(ctx, req.GetRecipientCertificates(), req.GetRecipientKeys())
	if err != nil {
		return nil, err
	}
	der, err := envelope.Encrypt(req.GetData(), certs, envelope.Options{
		Cipher: c, KeyTransport: kt, AllowLegacy: req.GetAllowLegacy(), Now: es.s.d.Now(), Limits: lim,
	})
	if err != nil {
		return nil, err
	}
	return &pecetv1.EncryptResponse{Enveloped: der}, nil
}

// recipients are the certificates Encrypt and EncryptStream encrypt to:
// those given, and the primary certificates of the DECRYPT keys named
// (each alias allowed to the caller).
func (es *envelopeService) recipients(ctx context.Context, ders [][]byte, aliases []string) ([]*x509.Certificate, error) {
	n := len(ders) + len(aliases)
	if n == 0 {
		return nil, grpcerr.InvalidArgument("at least one recipient is required: a certificate or the alias of a DECRYPT key")
	}
	if max := es.s.d.Envelope.WithDefaults().MaxRecipients; n > max {
		return nil, envelope.ErrTooLarge
	}
	certs := make([]*x509.Certificate, 0, n)
	for _, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, grpcerr.InvalidArgument("a recipient certificate is not a DER X.509 certificate")
		}
		certs = append(certs, cert)
	}
	caller := authz.CallerFrom(ctx)
	for _, alias := range aliases {
		if !caller.MayUseKey(alias) {
			return nil, authz.ErrDenied
		}
		k, err := es.s.d.Keys.GetKey(ctx, alias)
		if err != nil {
			return nil, err
		}
		if k.Purpose != keystore.PurposeDecrypt {
			return nil, keystore.ErrWrongPurpose
		}
		cert, err := primaryCert(k)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

// primaryCert is the certificate to encrypt to for a DECRYPT key: its
// primary's, unless the token's certificate does not match the key pair
// (someone replaced it: encrypting to it would encrypt to them).
func primaryCert(k keystore.Key) (*x509.Certificate, error) {
	for _, v := range k.Versions {
		if v.Version == k.PrimaryVersion && v.State == keystore.StateEnabled {
			if v.Problem != "" {
				return nil, fmt.Errorf("%w: %q version %d: %s", keystore.ErrVersionRefused, k.Alias, v.Version, v.Problem)
			}
			if c := v.Certificate(); c != nil {
				return c, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %q", keystore.ErrNoPrimary, k.Alias)
}

func (es *envelopeService) Decrypt(ctx context.Context, req *pecetv1.DecryptRequest) (*pecetv1.DecryptResponse, error) {
	if len(req.GetEnveloped()) == 0 {
		return nil, grpcerr.InvalidArgument("enveloped is empty")
	}
	caller := authz.CallerFrom(ctx)
	if a := req.GetKey(); a != "" && !caller.MayUseKey(a) {
		return nil, authz.ErrDenied
	}
	m, err := envelope.Parse(req.GetEnveloped(), es.s.d.Envelope)
	if err != nil {
		return nil, err
	}
	find, err := es.finder(ctx, req.GetKey())
	if err != nil {
		return nil, err
	}
	// In place: the request is this call's own copy, read no more, and a
	// body-sized buffer less per call is what peak memory under
	// concurrent large decryptions is made of (docs/performance.md).
	res, err := m.Decrypt(ctx, find, envelope.DecryptOptions{OAEP: es.s.d.OAEP, InPlace: true})
	if err != nil {
		if errors.Is(err, envelope.ErrDecrypt) {
			// The one place the reason could leak is the log: say only
			// that it failed, never the cause (there is none attached).
			es.s.d.Log.InfoContext(ctx, "decryption failed", "caller", caller.Identity)
		}
		return nil, err
	}
	v := res.Key.(*keystore.KeyDecrypter).Version()
	return &pecetv1.DecryptResponse{
		Data:         res.Plaintext,
		Key:          v.Alias,
		Version:      uint32(v.Version),
		Cipher:       cipherProto(res.Cipher),
		KeyTransport: transportProto(res.KeyTransport),
	}, nil
}

// finder is Decrypt's and DecryptStream's key lookup: the ENABLED
// versions of the DECRYPT keys the caller may use (or the one alias asked
// for, already authorised), read once per call. The version a
// RecipientInfo names goes into the call's audit record.
func (es *envelopeService) finder(ctx context.Context, alias string) (envelope.Finder, error) {
	caller := authz.CallerFrom(ctx)
	var keys []keystore.Key
	if alias != "" {
		k, err := es.s.d.Keys.GetKey(ctx, alias)
		if err != nil {
			return nil, err
		}
		if k.Purpose != keystore.PurposeDecrypt {
			return nil, keystore.ErrWrongPurpose
		}
		keys = []keystore.Key{k}
	} else {
		all, err := es.s.d.Keys.ListKeys(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range all {
			if k.Purpose == keystore.PurposeDecrypt && caller.MayUseKey(k.Alias) {
				keys = append(keys, k)
			}
		}
	}
	call := ctx // the audit record lives in the call's context
	return func(ctx context.Context, id envelope.RecipientID) (envelope.Key, error) {
		for _, k := range keys {
			for _, v := range k.Versions {
				if v.State == keystore.StateEnabled && id.Matches(v.Certificate()) {
					auditKey(call, k.Alias, v.Version)
					noteTried(ctx, k.Alias, v.Version) // a DecryptBatch item's line
					// Dual control: a version never admitted does not decrypt.
					if err := es.s.checkAdmitted(v); err != nil {
						return nil, err
					}
					return es.s.d.Keys.Decrypter(ctx, k.Alias, v.Version)
				}
			}
		}
		return nil, nil
	}, nil
}
