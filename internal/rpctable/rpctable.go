// Package rpctable is the one table that describes every RPC pecetd
// serves: who may call it (authz), whether and how it is audited (the
// server's interceptors), whether it is a stream, and whether it is open to
// any mTLS peer (health, reflection). A new RPC gets one row here; the
// table's test fails for an RPC in the proto without exactly one row. The
// roles are README.md's "Who may call what" (identities: docs/security.md
// "Client identities"; audit lines: docs/security.md "Audit log").
package rpctable

import (
	"slices"

	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
)

// Role names, as config's clients[].roles gives them.
const (
	RoleClient  = "client"
	RoleGateway = "gateway"
	RoleOfficer = "officer"
)

// AuditInfo is what a request says about itself for the audit log.
type AuditInfo struct {
	Key     string
	Version int
	// Input is hashed (SHA-256 over the parts in order), never logged.
	Input [][]byte
}

// Audit says how an RPC's calls are audited. For a unary RPC, Unary reads
// the key, version and input from the request for the begin line. For a
// stream, First reads the key and version from the first request (the
// parameters) and Input gives each request's bytes, which the end line's
// input_sha256 covers.
type Audit struct {
	Unary func(req any) AuditInfo
	First func(req any) AuditInfo
	Input func(req any) []byte
	// DurableEnd: the end line is durable before the result leaves under
	// every audit.sync policy but none (key lifecycle and dual control:
	// after a crash the log must say whether a key version changed).
	DurableEnd bool
}

// Row describes one RPC.
type Row struct {
	Method string // the generated *_FullMethodName
	// Roles may call it; empty for an open RPC. A method without a row is
	// denied to everybody.
	Roles []string
	// Open: any mTLS-authenticated peer, no role, no audit (health and
	// reflection).
	Open bool
	// Stream: a client or server stream (the stream interceptor serves
	// it).
	Stream bool
	// Audit is nil for a call that touches no key: read-only calls and
	// Encrypt (denials of every call are audited without a spec).
	Audit *Audit
}

var (
	all  = []string{RoleClient, RoleGateway, RoleOfficer}
	clGw = []string{RoleClient, RoleGateway}
	cl   = []string{RoleClient}
	gw   = []string{RoleGateway}
	off  = []string{RoleOfficer}
)

// rows is the table. Keep it in the proto's order per service.
var rows = []Row{
	{Method: pecetv1.SignService_Sign_FullMethodName, Roles: cl, Audit: &Audit{Unary: func(req any) AuditInfo {
		r := req.(*pecetv1.SignRequest)
		in := r.GetData()
		if d := r.GetDigest(); d != nil {
			in = d
		}
		return AuditInfo{Key: r.GetKey(), Version: int(r.GetVersion()), Input: [][]byte{in}}
	}}},
	{Method: pecetv1.SignService_Verify_FullMethodName, Roles: clGw},
	// The batch forms of Sign with a digest: Sign's roles; the begin line
	// covers every digest, and each item gets its own line
	// (docs/security.md "Batch calls").
	{Method: pecetv1.SignService_SignDigests_FullMethodName, Roles: cl, Audit: &Audit{Unary: func(req any) AuditInfo {
		r := req.(*pecetv1.SignDigestsRequest)
		return AuditInfo{Key: r.GetKey(), Version: int(r.GetVersion()), Input: r.GetDigests()}
	}}},
	{Method: pecetv1.SignService_SignDigestsStream_FullMethodName, Roles: cl, Stream: true, Audit: &Audit{
		First: func(req any) AuditInfo {
			r := req.(*pecetv1.SignDigestsRequest)
			return AuditInfo{Key: r.GetKey(), Version: int(r.GetVersion())}
		},
		Input: func(req any) []byte { return concat(req.(*pecetv1.SignDigestsRequest).GetDigests()) },
	}},
	// Augment signs only time-stamps, with the TSA key, as Timestamp does
	// for the same roles; no caller key is used. Audited with the
	// signature as input (docs/security.md "CAdES augmentation").
	{Method: pecetv1.SignService_Augment_FullMethodName, Roles: clGw, Audit: &Audit{Unary: func(req any) AuditInfo {
		r := req.(*pecetv1.AugmentRequest)
		return AuditInfo{Input: [][]byte{r.GetSignature(), []byte(r.GetLevel().String())}}
	}}},

	{Method: pecetv1.KeyService_ListKeys_FullMethodName, Roles: all},
	{Method: pecetv1.KeyService_GetKey_FullMethodName, Roles: all},
	// Key management: officers only; every change is audited with a
	// durable end line.
	{Method: pecetv1.KeyService_CreateKey_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.CreateKeyRequest)
		return AuditInfo{Key: r.GetAlias(), Input: [][]byte{[]byte(r.GetPurpose().String()), []byte(r.GetAlgorithm().String())}}
	})},
	{Method: pecetv1.KeyService_RotateKey_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		return AuditInfo{Key: req.(*pecetv1.RotateKeyRequest).GetAlias()}
	})},
	{Method: pecetv1.KeyService_CreateCSR_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.CreateCSRRequest)
		in := [][]byte{[]byte(r.GetSubject())}
		for _, san := range r.GetSubjectAltNames() {
			in = append(in, []byte(san))
		}
		return AuditInfo{Key: r.GetAlias(), Version: int(r.GetVersion()), Input: in}
	})},
	{Method: pecetv1.KeyService_ImportCertificate_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.ImportCertificateRequest)
		return AuditInfo{Key: r.GetAlias(), Version: int(r.GetVersion()), Input: r.GetChain()}
	})},
	{Method: pecetv1.KeyService_SetPrimaryVersion_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.SetPrimaryVersionRequest)
		return AuditInfo{Key: r.GetAlias(), Version: int(r.GetVersion())}
	})},
	{Method: pecetv1.KeyService_DisableKeyVersion_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.DisableKeyVersionRequest)
		return AuditInfo{Key: r.GetAlias(), Version: int(r.GetVersion())}
	})},
	{Method: pecetv1.KeyService_EnableKeyVersion_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.EnableKeyVersionRequest)
		return AuditInfo{Key: r.GetAlias(), Version: int(r.GetVersion())}
	})},
	{Method: pecetv1.KeyService_DestroyKeyVersion_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		r := req.(*pecetv1.DestroyKeyVersionRequest)
		return AuditInfo{Key: r.GetAlias(), Version: int(r.GetVersion())}
	})},
	// ListRequests reads only; it is not audited (its denials are).
	{Method: pecetv1.KeyService_ListRequests_FullMethodName, Roles: off},
	{Method: pecetv1.KeyService_ApproveRequest_FullMethodName, Roles: off, Audit: lifecycle(func(req any) AuditInfo {
		return AuditInfo{Input: [][]byte{[]byte(req.(*pecetv1.ApproveRequestRequest).GetId())}}
	})},

	{Method: pecetv1.PolicyService_ValidateCertificate_FullMethodName, Roles: clGw},
	{Method: pecetv1.PolicyService_ListPolicies_FullMethodName, Roles: all},

	// Encrypt needs no private key and is not audited (its denials are);
	// naming a pecet key as a recipient also needs that alias in the
	// caller's keys. Decrypt is the gateway's, with the DECRYPT keys config
	// gives it; the key version is found in the RecipientInfo, which the
	// handler reports (auditKey).
	{Method: pecetv1.EnvelopeService_Encrypt_FullMethodName, Roles: cl},
	{Method: pecetv1.EnvelopeService_Decrypt_FullMethodName, Roles: gw, Audit: &Audit{Unary: func(req any) AuditInfo {
		r := req.(*pecetv1.DecryptRequest)
		return AuditInfo{Key: r.GetKey(), Input: [][]byte{r.GetEnveloped()}}
	}}},
	// The streaming forms: the same roles and audit as the unary calls.
	{Method: pecetv1.EnvelopeService_EncryptStream_FullMethodName, Roles: cl, Stream: true},
	{Method: pecetv1.EnvelopeService_DecryptStream_FullMethodName, Roles: gw, Stream: true, Audit: &Audit{
		First: func(req any) AuditInfo { return AuditInfo{Key: req.(*pecetv1.DecryptStreamRequest).GetKey()} },
		Input: func(req any) []byte { return req.(*pecetv1.DecryptStreamRequest).GetEnveloped() },
	}},
	{Method: pecetv1.EnvelopeService_DecryptBatch_FullMethodName, Roles: gw, Audit: &Audit{Unary: func(req any) AuditInfo {
		r := req.(*pecetv1.DecryptBatchRequest)
		return AuditInfo{Key: r.GetKey(), Input: r.GetEnveloped()}
	}}},

	// The TSA key is not the caller's key: time-stamps are a service to
	// whoever may call, as on the open HTTP endpoint. It signs with the TSA
	// key's primary version; the input is the client's digest (POST /tsa is
	// audited by the HTTP handler).
	{Method: pecetv1.TimestampService_Timestamp_FullMethodName, Roles: clGw, Audit: &Audit{Unary: func(req any) AuditInfo {
		return AuditInfo{Input: [][]byte{req.(*pecetv1.TimestampRequest).GetDigest()}}
	}}},
	{Method: pecetv1.TimestampService_TimestampBatch_FullMethodName, Roles: clGw, Audit: &Audit{Unary: func(req any) AuditInfo {
		var in [][]byte
		for _, r := range req.(*pecetv1.TimestampBatchRequest).GetRequests() {
			in = append(in, r.GetDigest())
		}
		return AuditInfo{Input: in}
	}}},

	// Archive: like Timestamp, the TSA key is a service to whoever may
	// call, and the input is the client's digests (or records). One begin
	// and one end line per batch; the end line names the batch's root and
	// count (audit.Event.Archive), never a document. VerifyRecord reads only.
	{Method: pecetv1.ArchiveService_Seal_FullMethodName, Roles: clGw, Stream: true, Audit: &Audit{
		First: func(any) AuditInfo { return AuditInfo{} },
		Input: func(req any) []byte { return concat(req.(*pecetv1.SealRequest).GetDigests()) },
	}},
	{Method: pecetv1.ArchiveService_SealStream_FullMethodName, Roles: clGw, Stream: true, Audit: &Audit{
		First: func(any) AuditInfo { return AuditInfo{} },
		Input: func(req any) []byte { return concat(req.(*pecetv1.SealStreamRequest).GetDigests()) },
	}},
	{Method: pecetv1.ArchiveService_Renew_FullMethodName, Roles: clGw, Stream: true, Audit: &Audit{
		First: func(any) AuditInfo { return AuditInfo{} },
		Input: func(req any) []byte {
			r := req.(*pecetv1.RenewRequest)
			return concat(append(slices.Clip(r.GetRecords()), r.GetDigests()...))
		},
	}},
	{Method: pecetv1.ArchiveService_VerifyRecord_FullMethodName, Roles: clGw},

	// Open to any mTLS-authenticated peer: load balancers and grpcurl.
	{Method: grpc_health_v1.Health_Check_FullMethodName, Open: true},
	{Method: grpc_health_v1.Health_List_FullMethodName, Open: true},
	{Method: grpc_health_v1.Health_Watch_FullMethodName, Open: true, Stream: true},
	{Method: grpc_reflection_v1.ServerReflection_ServerReflectionInfo_FullMethodName, Open: true, Stream: true},
	{Method: grpc_reflection_v1alpha.ServerReflection_ServerReflectionInfo_FullMethodName, Open: true, Stream: true},
}

// concat joins a stream request's parts for its input hash.
func concat(parts [][]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func lifecycle(f func(req any) AuditInfo) *Audit { return &Audit{Unary: f, DurableEnd: true} }

var byMethod = func() map[string]*Row {
	m := make(map[string]*Row, len(rows))
	for i := range rows {
		m[rows[i].Method] = &rows[i]
	}
	return m
}()

// Lookup returns the row of a full method name, or nil for a method the
// table does not know (denied to everybody).
func Lookup(method string) *Row { return byMethod[method] }

// Rows returns a copy of the table, in its order.
func Rows() []Row { return slices.Clone(rows) }

// Open reports whether a method is open to any mTLS peer.
func Open(method string) bool {
	r := byMethod[method]
	return r != nil && r.Open
}

// Roles returns the roles that may call a method (none for an unknown or
// open method).
func Roles(method string) []string {
	r := byMethod[method]
	if r == nil {
		return nil
	}
	return slices.Clone(r.Roles)
}

// AuditOf returns how a method is audited, or nil.
func AuditOf(method string) *Audit {
	r := byMethod[method]
	if r == nil {
		return nil
	}
	return r.Audit
}
