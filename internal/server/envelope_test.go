package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/envelope"
	"github.com/pecet-hsm/pecet/internal/devca"
)

func TestEnvelopeRoundTripAndRotation(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	enc := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	dec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway"))
	data := bytes.Repeat([]byte("<PRIHL/>"), 1000)

	old := map[pecetv1.ContentCipher][]byte{}
	for _, c := range []pecetv1.ContentCipher{pecetv1.ContentCipher_AES_256_CBC, pecetv1.ContentCipher_AES_256_GCM, pecetv1.ContentCipher_AES_128_GCM} {
		for _, kt := range []pecetv1.KeyTransport{pecetv1.KeyTransport_RSA_OAEP, pecetv1.KeyTransport_RSA_OAEP_SHA1, pecetv1.KeyTransport_RSA_PKCS1} {
			er, err := enc.Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{"gateway-decrypt"}, Cipher: c, KeyTransport: kt})
			if err != nil {
				t.Fatal(err)
			}
			dr, err := dec.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: er.GetEnveloped()})
			if err != nil {
				t.Fatalf("%s %s: %v", c, kt, err)
			}
			if !bytes.Equal(dr.GetData(), data) || dr.GetKey() != "gateway-decrypt" || dr.GetVersion() != 1 || dr.GetCipher() != c || dr.GetKeyTransport() != kt {
				t.Fatalf("%s %s: got %s v%d %s %s", c, kt, dr.GetKey(), dr.GetVersion(), dr.GetCipher(), dr.GetKeyTransport())
			}
			old[c] = er.GetEnveloped()
		}
	}

	// Rotate: version 2 becomes primary; what was encrypted to version 1
	// still opens, new messages go to version 2.
	v2, err := f.store.RotateKey(context.Background(), "gateway-decrypt")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := f.ca.Issue("gateway-decrypt", devca.CMSDecrypt, v2.Public, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.ImportCertificate(context.Background(), "gateway-decrypt", 2, []*x509.Certificate{cert, f.ca.Cert}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.SetPrimaryVersion(context.Background(), "gateway-decrypt", 2); err != nil {
		t.Fatal(err)
	}
	er, err := enc.Encrypt(ctx, &pecetv1.EncryptRequest{Data: data, RecipientKeys: []string{"gateway-decrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	// The unspecified cipher is AES-256-GCM (AuthEnvelopedData).
	if dr, err := dec.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: er.GetEnveloped(), Key: "gateway-decrypt"}); err != nil || dr.GetVersion() != 2 || dr.GetCipher() != pecetv1.ContentCipher_AES_256_GCM {
		t.Fatalf("new message: version %d, cipher %s, %v", dr.GetVersion(), dr.GetCipher(), err)
	}
	if dr, err := dec.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: old[pecetv1.ContentCipher_AES_256_GCM]}); err != nil || dr.GetVersion() != 1 {
		t.Fatalf("old message: version %d, %v", dr.GetVersion(), err)
	}
	// Disabled: version 1 is no longer a candidate.
	if _, err := f.store.DisableKeyVersion(context.Background(), "gateway-decrypt", 1); err != nil {
		t.Fatal(err)
	}
	_, err = dec.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: old[pecetv1.ContentCipher_AES_256_GCM]})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("disabled version: %v", err)
	}
}

// TestDecryptNoOracle: every tampering gives the same status and message.
func TestDecryptNoOracle(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	enc := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	dec := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway"))
	for _, kt := range []pecetv1.KeyTransport{pecetv1.KeyTransport_RSA_OAEP, pecetv1.KeyTransport_RSA_PKCS1} {
		er, err := enc.Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("secret filing"), RecipientKeys: []string{"gateway-decrypt"},
			Cipher: pecetv1.ContentCipher_AES_256_GCM, KeyTransport: kt})
		if err != nil {
			t.Fatal(err)
		}
		m, err := envelope.Parse(er.GetEnveloped(), envelope.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		// Offsets of the encrypted key, the ciphertext and the tag in the DER.
		der := er.GetEnveloped()
		ek := bytes.Index(der, m.Recipients[0].EncryptedKey)
		ct := bytes.Index(der, m.EncryptedContent)
		tag := bytes.LastIndex(der, m.MAC)
		var statuses []*status.Status
		for _, off := range []int{ek, ek + 1, ek + 100, ek + len(m.Recipients[0].EncryptedKey) - 1, ct, ct + 5, tag, tag + 15} {
			bad := bytes.Clone(der)
			bad[off] ^= 0x01
			_, err := dec.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: bad})
			statuses = append(statuses, status.Convert(err))
		}
		for i, st := range statuses {
			if st.Code() != codes.InvalidArgument || st.Message() != statuses[0].Message() || st.Message() != "decryption failed" {
				t.Errorf("%s mutation %d: %s %q", kt, i, st.Code(), st.Message())
			}
		}
	}
}

func TestEnvelopeErrors(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	client := pecetv1.NewEnvelopeServiceClient(f.dial(t, "client"))
	wide := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client"))
	gw := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway"))
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"encrypt to a key not granted", func() error {
			_, err := client.Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("x"), RecipientKeys: []string{"gateway-decrypt"}})
			return err
		}, codes.PermissionDenied},
		{"encrypt to a SIGN key", func() error {
			_, err := wide.Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("x"), RecipientKeys: []string{"client-sign"}})
			return err
		}, codes.FailedPrecondition},
		{"encrypt without recipients", func() error {
			_, err := wide.Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("x")})
			return err
		}, codes.InvalidArgument},
		{"encrypt nothing", func() error {
			_, err := wide.Encrypt(ctx, &pecetv1.EncryptRequest{RecipientKeys: []string{"gateway-decrypt"}})
			return err
		}, codes.InvalidArgument},
		{"too many recipients", func() error {
			keys := make([]string, 17)
			for i := range keys {
				keys[i] = "gateway-decrypt"
			}
			_, err := wide.Encrypt(ctx, &pecetv1.EncryptRequest{Data: []byte("x"), RecipientKeys: keys})
			return err
		}, codes.ResourceExhausted},
		{"decrypt with a key not granted", func() error {
			_, err := gw.Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: []byte{0x30, 0}, Key: "client-sign"})
			return err
		}, codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
