package server

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/csr"
	"github.com/pecet-hsm/pecet/internal/dualcontrol"
	"github.com/pecet-hsm/pecet/internal/grpcerr"
	"github.com/pecet-hsm/pecet/keystore"
)

type keyService struct {
	pecetv1.UnimplementedKeyServiceServer
	s *Server
}

// maxChain bounds an imported chain: a leaf and its issuers up to a root.
const maxChain = 8

// ListKeys shows the keys the caller may use (officers: all).
func (ks *keyService) ListKeys(ctx context.Context, _ *pecetv1.ListKeysRequest) (*pecetv1.ListKeysResponse, error) {
	keys, err := ks.s.d.Keys.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	caller := authz.CallerFrom(ctx)
	resp := &pecetv1.ListKeysResponse{}
	for _, k := range keys {
		if caller.MayUseKey(k.Alias) {
			resp.Keys = append(resp.Keys, ks.keyProto(k))
		}
	}
	return resp, nil
}

// GetKey shows one key the caller may use. A key the caller may not use is
// reported as not found, so aliases do not leak to other roles.
func (ks *keyService) GetKey(ctx context.Context, req *pecetv1.GetKeyRequest) (*pecetv1.Key, error) {
	if req.GetAlias() == "" {
		return nil, grpcerr.InvalidArgument("alias is required")
	}
	if !authz.CallerFrom(ctx).MayUseKey(req.GetAlias()) {
		return nil, keystore.ErrKeyNotFound
	}
	k, err := ks.s.d.Keys.GetKey(ctx, req.GetAlias())
	if err != nil {
		return nil, err
	}
	return ks.keyProto(k), nil
}

// keyProto adds the expiry warning and dual-control admission to the key's
// description.
func (ks *keyService) keyProto(k keystore.Key) *pecetv1.Key {
	out := keyProto(k)
	out.Warning = expiryWarning(k, ks.s.d.Now(), ks.s.Current().KeyPolicy.ExpiryWarningDays)
	for i, v := range k.Versions {
		if i < len(out.Versions) && v.State != keystore.StateDestroyed {
			out.Versions[i].AwaitingApproval = ks.s.checkAdmitted(v) != nil
		}
	}
	return out
}

// checkAdmitted refuses a version that dual control has not admitted: when
// set-primary needs a second officer for the alias, only a version that is
// or has been primary may sign or decrypt, so that one officer cannot make
// a key usable by rotating and certifying it (docs/security.md "Dual
// control").
func (s *Server) checkAdmitted(v keystore.Version) error {
	if v.BeenPrimary || !s.Current().KeyPolicy.DualControl.NeedsApproval(config.OpSetPrimary, v.Alias) {
		return nil
	}
	return fmt.Errorf("%w: %q version %d has never been primary", dualcontrol.ErrNotAdmitted, v.Alias, v.Version)
}

// certNeedsApproval: storing a chain for v needs a second officer when
// set-primary does and the chain changes what a usable version is: the
// version is in use (admitted), or it is the alias's first certificate,
// which makes it primary.
func (ks *keyService) certNeedsApproval(k keystore.Key, v keystore.Version) bool {
	if !ks.s.Current().KeyPolicy.DualControl.NeedsApproval(config.OpSetPrimary, k.Alias) {
		return false
	}
	return (v.BeenPrimary && v.State != keystore.StatePendingCertificate) || k.PrimaryVersion == 0
}

// maxRequestChain bounds the chain a dual-control request carries, so the
// request fits keystore.MaxRequestBytes once base64-encoded in JSON.
const maxRequestChain = 40 << 10

// expiryWarning: the primary's certificate has expired or expires within
// days. Sign keeps working until NotAfter, but verifiers judge signatures
// made after it INVALID, so officers must renew (rotate, certify, switch)
// in time.
func expiryWarning(k keystore.Key, now time.Time, days int) string {
	for _, v := range k.Versions {
		c := v.Certificate()
		if !v.Primary || c == nil {
			continue
		}
		left := c.NotAfter.Sub(now)
		switch {
		case left <= 0:
			return fmt.Sprintf("the primary version %d's certificate expired on %s: rotate, certify and set a new primary", v.Version, c.NotAfter.UTC().Format(time.DateOnly))
		case left <= time.Duration(days)*24*time.Hour:
			return fmt.Sprintf("the primary version %d's certificate expires on %s (in %d days, warning threshold %d): rotate and certify a new version", v.Version, c.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24), days)
		}
	}
	return ""
}

func needAlias(alias string) error {
	if alias == "" {
		return grpcerr.InvalidArgument("alias is required")
	}
	return keystore.CheckAlias(alias)
}

func needVersion(v uint32) error {
	if v == 0 {
		return grpcerr.InvalidArgument("version is required (see `pecet keys show`)")
	}
	return nil
}

var (
	purposeFrom   = invert(purposeProto)
	algorithmFrom = invert(algorithmProto)
)

func invert[K comparable, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// resolveVersion maps 0 to the newest version of alias.
func (ks *keyService) resolveVersion(ctx context.Context, alias string, v uint32) (keystore.Key, int, error) {
	k, err := ks.s.d.Keys.GetKey(ctx, alias)
	if err != nil {
		return keystore.Key{}, 0, err
	}
	if v != 0 {
		return k, int(v), nil
	}
	if len(k.Versions) == 0 {
		return k, 0, fmt.Errorf("%w: %q has no versions", keystore.ErrVersionNotFound, alias)
	}
	return k, k.Versions[len(k.Versions)-1].Version, nil
}

func versionOf(k keystore.Key, v int) (keystore.Version, error) {
	i := slices.IndexFunc(k.Versions, func(x keystore.Version) bool { return x.Version == v })
	if i < 0 {
		return keystore.Version{}, fmt.Errorf("%w: %q version %d", keystore.ErrVersionNotFound, k.Alias, v)
	}
	return k.Versions[i], nil
}

func (ks *keyService) CreateKey(ctx context.Context, req *pecetv1.CreateKeyRequest) (*pecetv1.KeyChange, error) {
	if err := needAlias(req.GetAlias()); err != nil {
		return nil, err
	}
	p, ok := purposeFrom[req.GetPurpose()]
	if !ok {
		return nil, grpcerr.InvalidArgument("purpose is required: SIGN, DECRYPT or TIMESTAMP")
	}
	a, ok := algorithmFrom[req.GetAlgorithm()]
	if !ok {
		return nil, grpcerr.InvalidArgument("algorithm is required: RSA_2048, RSA_3072, RSA_4096, EC_P256 or EC_P384")
	}
	if err := keystore.CheckPurposeAlgorithm(p, a); err != nil {
		return nil, err
	}
	r := dualcontrol.Request{Operation: config.OpCreate, Alias: req.GetAlias(), Purpose: string(p), Algorithm: string(a)}
	if ks.needsApproval(r) {
		if _, err := ks.s.d.Keys.GetKey(ctx, r.Alias); err == nil {
			return nil, fmt.Errorf("%w: %q", keystore.ErrKeyExists, r.Alias)
		} else if !errors.Is(err, keystore.ErrKeyNotFound) {
			return nil, err
		}
		return ks.request(ctx, r)
	}
	return ks.execute(ctx, r)
}

func (ks *keyService) RotateKey(ctx context.Context, req *pecetv1.RotateKeyRequest) (*pecetv1.KeyChange, error) {
	if err := needAlias(req.GetAlias()); err != nil {
		return nil, err
	}
	r := dualcontrol.Request{Operation: config.OpRotate, Alias: req.GetAlias()}
	if ks.needsApproval(r) {
		if _, err := ks.s.d.Keys.GetKey(ctx, r.Alias); err != nil {
			return nil, err
		}
		return ks.request(ctx, r)
	}
	return ks.execute(ctx, r)
}

func (ks *keyService) SetPrimaryVersion(ctx context.Context, req *pecetv1.SetPrimaryVersionRequest) (*pecetv1.KeyChange, error) {
	return ks.versionOp(ctx, config.OpSetPrimary, req.GetAlias(), req.GetVersion(), func(r *dualcontrol.Request, v keystore.Version) error {
		if v.State != keystore.StateEnabled {
			return fmt.Errorf("%w: %q version %d is %s", keystore.ErrKeyNotEnabled, r.Alias, r.Version, v.State)
		}
		// The approver approves this certificate: replacing it meanwhile
		// (one officer may, while the version is not in use) voids the
		// request.
		r.CertSHA256 = certSum(v)
		return nil
	})
}

// certSum is the SHA-256 of a version's leaf certificate, hex; "" if none.
func certSum(v keystore.Version) string {
	c := v.Certificate()
	if c == nil {
		return ""
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func (ks *keyService) DestroyKeyVersion(ctx context.Context, req *pecetv1.DestroyKeyVersionRequest) (*pecetv1.KeyChange, error) {
	return ks.versionOp(ctx, config.OpDestroy, req.GetAlias(), req.GetVersion(), func(r *dualcontrol.Request, v keystore.Version) error {
		if v.Primary || (v.State != keystore.StateDisabled && v.State != keystore.StatePendingCertificate) {
			return fmt.Errorf("%w: %q version %d is %s (primary %v)", keystore.ErrInvalidState, r.Alias, r.Version, v.State, v.Primary)
		}
		return nil
	})
}

// versionOp runs an operation on one key version that may need dual
// control: executed at once, or, when it needs approval, filed as a request
// after precheck has refused now what the approval would refuse anyway.
func (ks *keyService) versionOp(ctx context.Context, op, alias string, version uint32, precheck func(*dualcontrol.Request, keystore.Version) error) (*pecetv1.KeyChange, error) {
	if err := needAlias(alias); err != nil {
		return nil, err
	}
	if err := needVersion(version); err != nil {
		return nil, err
	}
	r := dualcontrol.Request{Operation: op, Alias: alias, Version: int(version)}
	if !ks.needsApproval(r) {
		return ks.execute(ctx, r)
	}
	k, err := ks.s.d.Keys.GetKey(ctx, r.Alias)
	if err != nil {
		return nil, err
	}
	v, err := versionOf(k, r.Version)
	if err != nil {
		return nil, err
	}
	if err := precheck(&r, v); err != nil {
		return nil, err
	}
	return ks.request(ctx, r)
}

func (ks *keyService) DisableKeyVersion(ctx context.Context, req *pecetv1.DisableKeyVersionRequest) (*pecetv1.KeyChange, error) {
	return ks.setState(ctx, req.GetAlias(), req.GetVersion(), ks.s.d.KeyAdmin.DisableKeyVersion)
}

func (ks *keyService) EnableKeyVersion(ctx context.Context, req *pecetv1.EnableKeyVersionRequest) (*pecetv1.KeyChange, error) {
	return ks.setState(ctx, req.GetAlias(), req.GetVersion(), ks.s.d.KeyAdmin.EnableKeyVersion)
}

func (ks *keyService) setState(ctx context.Context, alias string, version uint32, fn func(context.Context, string, int) (keystore.Version, error)) (*pecetv1.KeyChange, error) {
	if err := needAlias(alias); err != nil {
		return nil, err
	}
	if err := needVersion(version); err != nil {
		return nil, err
	}
	v, err := fn(ctx, alias, int(version))
	if err != nil {
		return nil, err
	}
	return ks.changed(ctx, alias, v.Version)
}

func (ks *keyService) CreateCSR(ctx context.Context, req *pecetv1.CreateCSRRequest) (*pecetv1.CreateCSRResponse, error) {
	if err := needAlias(req.GetAlias()); err != nil {
		return nil, err
	}
	// Parse before touching the token: a typo costs no signature.
	if _, err := csr.ParseSubject(req.GetSubject()); err != nil {
		return nil, grpcerr.InvalidArgument(strings.TrimPrefix(err.Error(), "csr: "))
	}
	if _, err := csr.ParseSANs(req.GetSubjectAltNames()); err != nil {
		return nil, grpcerr.InvalidArgument(strings.TrimPrefix(err.Error(), "csr: "))
	}
	_, ver, err := ks.resolveVersion(ctx, req.GetAlias(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	auditKey(ctx, req.GetAlias(), ver)
	sg, err := ks.s.d.KeyAdmin.ProofSigner(ctx, req.GetAlias(), ver)
	if err != nil {
		return nil, err
	}
	der, err := csr.Create(sg, req.GetSubject(), req.GetSubjectAltNames())
	if err != nil {
		return nil, err
	}
	return &pecetv1.CreateCSRResponse{Csr: der, Version: uint32(ver)}, nil
}

func (ks *keyService) ImportCertificate(ctx context.Context, req *pecetv1.ImportCertificateRequest) (*pecetv1.KeyChange, error) {
	if err := needAlias(req.GetAlias()); err != nil {
		return nil, err
	}
	n := len(req.GetChain())
	if n == 0 || n > maxChain {
		return nil, grpcerr.InvalidArgument(fmt.Sprintf("chain must hold 1 to %d certificates, leaf first", maxChain))
	}
	chain := make([]*x509.Certificate, 0, n)
	for i, der := range req.GetChain() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("chain certificate %d is not a DER X.509 certificate", i))
		}
		chain = append(chain, c)
	}
	k, ver, err := ks.resolveVersion(ctx, req.GetAlias(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	auditKey(ctx, req.GetAlias(), ver)
	if err := keystore.CheckCertificateUsage(k.Purpose, chain[0]); err != nil {
		return nil, err
	}
	if v, err := versionOf(k, ver); err == nil && ks.certNeedsApproval(k, v) {
		// Refuse now what the approval would refuse anyway.
		type equaler interface{ Equal(x crypto.PublicKey) bool }
		if pub, ok := v.Public.(equaler); !ok || !pub.Equal(chain[0].PublicKey) {
			return nil, fmt.Errorf("%w: %q version %d", keystore.ErrCertificateMismatch, k.Alias, ver)
		}
		size := 0
		for _, der := range req.GetChain() {
			size += len(der)
		}
		if size > maxRequestChain {
			return nil, grpcerr.InvalidArgument(fmt.Sprintf("chain too large for a dual-control request: %d bytes, at most %d", size, maxRequestChain))
		}
		return ks.request(ctx, dualcontrol.Request{Operation: dualcontrol.OpImportCertificate, Alias: k.Alias, Version: ver, Chain: req.GetChain()})
	}
	if err := ks.importCertificate(ctx, k.Alias, ver, chain); err != nil {
		return nil, err
	}
	return ks.changed(ctx, req.GetAlias(), ver)
}

func (ks *keyService) importCertificate(ctx context.Context, alias string, version int, chain []*x509.Certificate) error {
	_, err := ks.s.d.KeyAdmin.ImportCertificate(ctx, alias, version, chain)
	return err
}

func (ks *keyService) ListRequests(ctx context.Context, _ *pecetv1.ListRequestsRequest) (*pecetv1.ListRequestsResponse, error) {
	stored, err := ks.s.d.Requests.ListRequests(ctx)
	if err != nil {
		return nil, err
	}
	now := ks.s.d.Now()
	var rs []dualcontrol.Request
	for _, st := range stored {
		r, err := dualcontrol.Parse(st.Value)
		if err != nil {
			ks.s.d.Log.Warn("unreadable request on the token", "id", st.ID, "err", err)
			continue
		}
		if r.Expired(now) {
			// Expired requests are cleared lazily, by whichever replica
			// sees them first; losing that race is harmless.
			if err := ks.s.d.Requests.DeleteRequest(ctx, st.ID); err != nil && !errors.Is(err, keystore.ErrRequestNotFound) {
				ks.s.d.Log.Warn("cannot remove expired request", "id", st.ID, "err", err)
			}
			continue
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b dualcontrol.Request) int { return a.Created.Compare(b.Created) })
	resp := &pecetv1.ListRequestsResponse{}
	for _, r := range rs {
		resp.Requests = append(resp.Requests, requestProto(r))
	}
	return resp, nil
}

func (ks *keyService) ApproveRequest(ctx context.Context, req *pecetv1.ApproveRequestRequest) (*pecetv1.KeyChange, error) {
	if req.GetId() == "" {
		return nil, grpcerr.InvalidArgument("id is required (see `pecet keys requests`)")
	}
	auditRequest(ctx, req.GetId(), false)
	b, err := ks.s.d.Requests.GetRequest(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	r, err := dualcontrol.Parse(b)
	if err != nil {
		return nil, err
	}
	auditKey(ctx, r.Alias, r.Version)
	if err := r.CheckApproval(authz.CallerFrom(ctx).Identity, ks.s.d.Now()); err != nil {
		if errors.Is(err, dualcontrol.ErrExpired) {
			_ = ks.s.d.Requests.DeleteRequest(ctx, r.ID)
		}
		return nil, err
	}
	// Claim it: of two officers approving at once (on two replicas), only
	// the one whose delete succeeds carries it out.
	if err := ks.s.d.Requests.DeleteRequest(ctx, r.ID); err != nil {
		return nil, err
	}
	ks.s.d.Log.Info("dual-control request approved", "id", r.ID, "op", r.Operation, "alias", r.Alias, "by", r.By, "approver", authz.CallerFrom(ctx).Identity)
	return ks.execute(ctx, r)
}

func (ks *keyService) needsApproval(r dualcontrol.Request) bool {
	return ks.s.Current().KeyPolicy.DualControl.NeedsApproval(r.Operation, r.Alias)
}

// request stores r as a pending request of the calling officer.
func (ks *keyService) request(ctx context.Context, tmpl dualcontrol.Request) (*pecetv1.KeyChange, error) {
	r, err := dualcontrol.New(tmpl.Operation, tmpl.Alias, authz.CallerFrom(ctx).Identity, ks.s.d.Now(), ks.s.live(ctx).KeyPolicy.DualControl.RequestTTL)
	if err != nil {
		return nil, err
	}
	r.Version, r.Purpose, r.Algorithm, r.Chain, r.CertSHA256 = tmpl.Version, tmpl.Purpose, tmpl.Algorithm, tmpl.Chain, tmpl.CertSHA256
	b, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	if err := ks.s.d.Requests.PutRequest(ctx, r.ID, b); err != nil {
		return nil, err
	}
	auditRequest(ctx, r.ID, true)
	out := &pecetv1.KeyChange{Version: uint32(r.Version), PendingRequest: requestProto(r)}
	if k, err := ks.s.d.Keys.GetKey(ctx, r.Alias); err == nil {
		out.Key = ks.keyProto(k)
	}
	return out, nil
}

// execute carries out a create, rotate, set-primary or destroy.
func (ks *keyService) execute(ctx context.Context, r dualcontrol.Request) (*pecetv1.KeyChange, error) {
	admin := ks.s.d.KeyAdmin
	var (
		v   keystore.Version
		err error
	)
	ver := r.Version
	switch r.Operation {
	case config.OpCreate:
		v, err = admin.CreateKey(ctx, r.Alias, keystore.Purpose(r.Purpose), keystore.Algorithm(r.Algorithm))
		ver = v.Version
	case config.OpRotate:
		v, err = admin.RotateKey(ctx, r.Alias)
		ver = v.Version
	case config.OpSetPrimary:
		if r.CertSHA256 != "" {
			k, kerr := ks.s.d.Keys.GetKey(ctx, r.Alias)
			if kerr != nil {
				return nil, kerr
			}
			if v, verr := versionOf(k, r.Version); verr == nil && certSum(v) != r.CertSHA256 {
				return nil, fmt.Errorf("%w: %q version %d has another certificate than when %s was made", dualcontrol.ErrStale, r.Alias, r.Version, r.ID)
			}
		}
		_, err = admin.SetPrimaryVersion(ctx, r.Alias, r.Version)
	case dualcontrol.OpImportCertificate:
		err = ks.executeImport(ctx, r)
	case config.OpDestroy:
		_, err = admin.DestroyKeyVersion(ctx, r.Alias, r.Version)
	default:
		return nil, fmt.Errorf("%w: operation %q", dualcontrol.ErrMalformed, r.Operation)
	}
	if err != nil {
		return nil, err
	}
	auditKey(ctx, r.Alias, ver)
	return ks.changed(ctx, r.Alias, ver)
}

// executeImport stores an approved import-certificate request's chain,
// checked again as ImportCertificate checks it.
func (ks *keyService) executeImport(ctx context.Context, r dualcontrol.Request) error {
	if len(r.Chain) == 0 || len(r.Chain) > maxChain {
		return fmt.Errorf("%w: %s: chain of %d certificates", dualcontrol.ErrMalformed, r.ID, len(r.Chain))
	}
	chain := make([]*x509.Certificate, 0, len(r.Chain))
	for _, der := range r.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", dualcontrol.ErrMalformed, r.ID, err)
		}
		chain = append(chain, c)
	}
	k, err := ks.s.d.Keys.GetKey(ctx, r.Alias)
	if err != nil {
		return err
	}
	if err := keystore.CheckCertificateUsage(k.Purpose, chain[0]); err != nil {
		return err
	}
	return ks.importCertificate(ctx, r.Alias, r.Version, chain)
}

func (ks *keyService) changed(ctx context.Context, alias string, version int) (*pecetv1.KeyChange, error) {
	k, err := ks.s.d.Keys.GetKey(ctx, alias)
	if err != nil {
		return nil, err
	}
	return &pecetv1.KeyChange{Key: ks.keyProto(k), Version: uint32(version)}, nil
}

func requestProto(r dualcontrol.Request) *pecetv1.PendingRequest {
	return &pecetv1.PendingRequest{
		Id:          r.ID,
		Operation:   r.Operation,
		Alias:       r.Alias,
		Version:     uint32(r.Version),
		Purpose:     purposeProto[keystore.Purpose(r.Purpose)],
		Algorithm:   algorithmProto[keystore.Algorithm(r.Algorithm)],
		RequestedBy: r.By,
		Created:     timestamppb.New(r.Created),
		Expires:     timestamppb.New(r.Expires),

		CertificateChain: r.Chain,
	}
}

// errNoKeyAdmin answers key changes on a server built without a KeyAdmin
// or RequestStore (Deps): a plain Unimplemented, not a nil-pointer panic.
var errNoKeyAdmin = status.Error(codes.Unimplemented, "this server does not administer keys")

// noKeyAdmin is Deps.KeyAdmin when none is given.
type noKeyAdmin struct{}

func (noKeyAdmin) CreateKey(context.Context, string, keystore.Purpose, keystore.Algorithm) (keystore.Version, error) {
	return keystore.Version{}, errNoKeyAdmin
}
func (noKeyAdmin) RotateKey(context.Context, string) (keystore.Version, error) {
	return keystore.Version{}, errNoKeyAdmin
}
func (noKeyAdmin) ImportCertificate(context.Context, string, int, []*x509.Certificate) (keystore.Version, error) {
	return keystore.Version{}, errNoKeyAdmin
}
func (noKeyAdmin) SetPrimaryVersion(context.Context, string, int) (keystore.Key, error) {
	return keystore.Key{}, errNoKeyAdmin
}
func (noKeyAdmin) EnableKeyVersion(context.Context, string, int) (keystore.Version, error) {
	return keystore.Version{}, errNoKeyAdmin
}
func (noKeyAdmin) DisableKeyVersion(context.Context, string, int) (keystore.Version, error) {
	return keystore.Version{}, errNoKeyAdmin
}
func (noKeyAdmin) DestroyKeyVersion(context.Context, string, int) (keystore.Version, error) {
	return keystore.Version{}, errNoKeyAdmin
}
func (noKeyAdmin) ProofSigner(context.Context, string, int) (crypto.Signer, error) {
	return nil, errNoKeyAdmin
}

// noRequestStore is Deps.Requests when none is given.
type noRequestStore struct{}

func (noRequestStore) PutRequest(context.Context, string, []byte) error { return errNoKeyAdmin }
func (noRequestStore) GetRequest(context.Context, string) ([]byte, error) {
	return nil, errNoKeyAdmin
}
func (noRequestStore) ListRequests(context.Context) ([]keystore.Request, error) {
	return nil, errNoKeyAdmin
}
func (noRequestStore) DeleteRequest(context.Context, string) error { return errNoKeyAdmin }
