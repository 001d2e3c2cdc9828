package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/rpctable"
)

// readmeRoles is the README's who-may-call-what paragraph, written out: client may
// Sign, Verify, Encrypt and ValidateCertificate; gateway may Verify,
// Decrypt and ValidateCertificate; both may Timestamp and Augment and use
// the ArchiveService (seal, renew, verify evidence records); everybody may list
// (and look up) the keys and the policies; only officer may call the
// KeyService write calls and see the pending requests. The streaming
// and batch forms go with their unary calls. Anything else is denied.
var readmeRoles = map[string][]string{
	RoleClient: {
		pecetv1.SignService_Sign_FullMethodName, pecetv1.SignService_Verify_FullMethodName,
		pecetv1.EnvelopeService_Encrypt_FullMethodName, pecetv1.EnvelopeService_EncryptStream_FullMethodName,
		pecetv1.PolicyService_ValidateCertificate_FullMethodName, pecetv1.TimestampService_Timestamp_FullMethodName,
		pecetv1.SignService_Augment_FullMethodName,
		pecetv1.ArchiveService_Seal_FullMethodName, pecetv1.ArchiveService_SealStream_FullMethodName,
		pecetv1.ArchiveService_Renew_FullMethodName, pecetv1.ArchiveService_VerifyRecord_FullMethodName,
		pecetv1.KeyService_ListKeys_FullMethodName, pecetv1.KeyService_GetKey_FullMethodName,
		pecetv1.PolicyService_ListPolicies_FullMethodName,
		pecetv1.SignService_SignDigests_FullMethodName, pecetv1.SignService_SignDigestsStream_FullMethodName,
		pecetv1.TimestampService_TimestampBatch_FullMethodName,
	},
	RoleGateway: {
		pecetv1.SignService_Verify_FullMethodName,
		pecetv1.EnvelopeService_Decrypt_FullMethodName, pecetv1.EnvelopeService_DecryptStream_FullMethodName,
		pecetv1.PolicyService_ValidateCertificate_FullMethodName, pecetv1.TimestampService_Timestamp_FullMethodName,
		pecetv1.SignService_Augment_FullMethodName,
		pecetv1.ArchiveService_Seal_FullMethodName, pecetv1.ArchiveService_SealStream_FullMethodName,
		pecetv1.ArchiveService_Renew_FullMethodName, pecetv1.ArchiveService_VerifyRecord_FullMethodName,
		pecetv1.KeyService_ListKeys_FullMethodName, pecetv1.KeyService_GetKey_FullMethodName,
		pecetv1.PolicyService_ListPolicies_FullMethodName,
		pecetv1.EnvelopeService_DecryptBatch_FullMethodName, pecetv1.TimestampService_TimestampBatch_FullMethodName,
	},
	RoleOfficer: {
		pecetv1.KeyService_ListKeys_FullMethodName, pecetv1.KeyService_GetKey_FullMethodName,
		pecetv1.PolicyService_ListPolicies_FullMethodName,
		pecetv1.KeyService_CreateKey_FullMethodName, pecetv1.KeyService_RotateKey_FullMethodName,
		pecetv1.KeyService_CreateCSR_FullMethodName, pecetv1.KeyService_ImportCertificate_FullMethodName,
		pecetv1.KeyService_SetPrimaryVersion_FullMethodName, pecetv1.KeyService_DisableKeyVersion_FullMethodName,
		pecetv1.KeyService_EnableKeyVersion_FullMethodName, pecetv1.KeyService_DestroyKeyVersion_FullMethodName,
		pecetv1.KeyService_ListRequests_FullMethodName, pecetv1.KeyService_ApproveRequest_FullMethodName,
	},
}

// peerCtx is a context whose peer presented cert, verified to ca.
func peerCtx(cert, ca *x509.Certificate) context.Context {
	st := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert, ca}}}
	return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: st}})
}

// TestRoleTable: every role (and no role, and an unknown name) × every RPC
// of the RPC table, and a method not in it, gives README's answer.
func TestRoleTable(t *testing.T) {
	ca := newCA(t, "roles CA")
	callers := []struct {
		name  string
		roles []string // nil: not configured
	}{
		{"client", []string{RoleClient}},
		{"gateway", []string{RoleGateway}},
		{"officer", []string{RoleOfficer}},
		{"client-and-gateway", []string{RoleClient, RoleGateway}}, // the union
		{"no-roles", []string{}},
		{"stranger", nil},
	}
	var clients []config.Client
	for _, c := range callers {
		if c.roles != nil {
			clients = append(clients, config.Client{Identity: c.name, Roles: c.roles, Keys: []string{"*"}})
		}
	}
	a, err := Load(clients, []*x509.Certificate{ca.Cert})
	if err != nil {
		t.Fatal(err)
	}
	methods := []string{"/unknown.v1.Service/Call"} // not in the table: denied to all
	for _, r := range rpctable.Rows() {
		if !r.Open {
			methods = append(methods, r.Method)
		}
	}
	for _, c := range callers {
		cert, err := ca.Issue(c.name, devca.TLSClient, newKey(t).Public(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ctx := peerCtx(cert, ca.Cert)
		for _, m := range methods {
			want := false
			for _, r := range c.roles {
				want = want || slices.Contains(readmeRoles[r], m)
			}
			t.Run(c.name+m, func(t *testing.T) {
				caller, err := a.Authorize(ctx, m)
				switch {
				case want && err != nil:
					t.Fatalf("denied: %v", err)
				case !want && !errors.Is(err, ErrDenied):
					t.Fatalf("got %v, want ErrDenied", err)
				case caller == nil || caller.Identity != c.name:
					t.Fatalf("caller %+v, want %s", caller, c.name)
				}
			})
		}
	}
	// Every role's list names only RPCs of the table (no stale spec).
	for role, ms := range readmeRoles {
		for _, m := range ms {
			if !slices.Contains(rpctable.Roles(m), role) {
				t.Errorf("README gives %s %s, the table does not", role, m)
			}
		}
	}
}

// TestNoIdentity: a peer without a verified certificate is ErrNoIdentity
// for every method.
func TestNoIdentity(t *testing.T) {
	a := New(nil)
	for _, r := range rpctable.Rows() {
		if _, err := a.Authorize(context.Background(), r.Method); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: got %v, want ErrNoIdentity", r.Method, err)
		}
	}
}
