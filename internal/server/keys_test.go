package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1"
	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/authz"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/keystore"
)

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Convert(err); got.Code() != want {
		t.Fatalf("%s: got %s (%s), want %s", what, got.Code(), got.Message(), want)
	}
}

// TestRegisteredRPCsHaveRoles: every pecet.v1 method the server registers has
// roles in the RPC table, internal/rpctable (a new RPC without roles would be
// denied to all).
func TestRegisteredRPCsHaveRoles(t *testing.T) {
	f := newFixture(t)
	g := New(Deps{Keys: f.store, Metrics: metrics.New(f.store.PoolStats)}).GRPC(nil)
	n := 0
	for svc, info := range g.GetServiceInfo() {
		if !strings.HasPrefix(svc, "pecet.v1.") {
			continue
		}
		for _, m := range info.Methods {
			n++
			if len(authz.AllowedRoles("/"+svc+"/"+m.Name)) == 0 {
				t.Errorf("/%s/%s has no roles", svc, m.Name)
			}
		}
	}
	if n < 14 {
		t.Errorf("only %d pecet.v1 methods registered", n)
	}
}

// issue certifies a version's public key with the fixture CA.
func (f *fixture) issue(t *testing.T, cn string, kind devca.Kind, pub any) [][]byte {
	t.Helper()
	c, err := f.ca.Issue(cn, kind, pub, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{c.Raw, f.ca.Cert.Raw}
}

func publicOf(t *testing.T, f *fixture, alias string, v int) any {
	t.Helper()
	k, err := f.store.GetKey(context.Background(), alias)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range k.Versions {
		if x.Version == v {
			return x.Public
		}
	}
	t.Fatalf("%s has no version %d", alias, v)
	return nil
}

// TestKeyLifecycleService: create → CSR → import → sign → rotate → import
// → set-primary → sign with v2, verify the v1 signature → destroy rules.
func TestKeyLifecycleService(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	ks := pecetv1.NewKeyServiceClient(f.dial(t, "officer"))
	sc := pecetv1.NewSignServiceClient(f.dial(t, "wide-client"))

	_, err := ks.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "life", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		req  *pecetv1.CreateKeyRequest
		code codes.Code
	}{
		{"exists", &pecetv1.CreateKeyRequest{Alias: "life", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256}, codes.AlreadyExists},
		{"EC decrypt", &pecetv1.CreateKeyRequest{Alias: "d", Purpose: pecetv1.KeyPurpose_DECRYPT, Algorithm: pecetv1.KeyAlgorithm_EC_P256}, codes.InvalidArgument},
		{"no purpose", &pecetv1.CreateKeyRequest{Alias: "d", Algorithm: pecetv1.KeyAlgorithm_EC_P256}, codes.InvalidArgument},
		{"bad alias", &pecetv1.CreateKeyRequest{Alias: "Bad Alias", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256}, codes.InvalidArgument},
	} {
		_, err := ks.CreateKey(ctx, c.req)
		wantCode(t, "create "+c.name, err, c.code)
	}

	// CSR for the pending version, signed on the token.
	csrResp, err := ks.CreateCSR(ctx, &pecetv1.CreateCSRRequest{Alias: "life", Subject: "CN=Life Test,O=pecet,C=CZ", SubjectAltNames: []string{"email:life@example.cz"}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(csrResp.GetCsr())
	if err != nil || req.CheckSignature() != nil || req.Subject.CommonName != "Life Test" || csrResp.GetVersion() != 1 {
		t.Fatalf("CSR: %v %+v", err, req)
	}
	_, err = ks.CreateCSR(ctx, &pecetv1.CreateCSRRequest{Alias: "life", Subject: "CN=a+O=b"})
	wantCode(t, "multi-valued subject", err, codes.InvalidArgument)
	_, err = ks.CreateCSR(ctx, &pecetv1.CreateCSRRequest{Alias: "life", Subject: "CN=x", SubjectAltNames: []string{"nope"}})
	wantCode(t, "bad SAN", err, codes.InvalidArgument)

	// Import: wrong key, wrong usage, garbage; then the right one.
	other, _ := f.store.GetKey(ctx, "client-sign")
	bad := []struct {
		name  string
		chain [][]byte
	}{
		{"another key's certificate", f.issue(t, "x", devca.CMSSign, other.Versions[0].Public)},
		{"decryption key usage", f.issue(t, "x", devca.CMSDecrypt, req.PublicKey)},
		{"not DER", [][]byte{[]byte("garbage")}},
		{"empty", nil},
	}
	for _, b := range bad {
		_, err := ks.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "life", Version: 1, Chain: b.chain})
		wantCode(t, "import "+b.name, err, codes.InvalidArgument)
	}
	ch, err := ks.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "life", Chain: f.issue(t, "life v1", devca.CMSSign, req.PublicKey)})
	if err != nil || ch.GetKey().GetVersions()[0].GetState() != pecetv1.KeyState_ENABLED || ch.GetKey().GetPrimaryVersion() != 1 {
		t.Fatalf("import: %v %v", ch, err)
	}
	data := []byte("<PRIHL>before rotation</PRIHL>")
	s1, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "life", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil || s1.GetVersion() != 1 {
		t.Fatalf("sign v1: %v %v", s1, err)
	}

	rot, err := ks.RotateKey(ctx, &pecetv1.RotateKeyRequest{Alias: "life"})
	if err != nil || rot.GetVersion() != 2 {
		t.Fatalf("rotate: %v %v", rot, err)
	}
	_, err = ks.SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: "life", Version: 2})
	wantCode(t, "set-primary pending", err, codes.FailedPrecondition)
	if _, err := ks.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "life", Version: 2, Chain: f.issue(t, "life v2", devca.CMSSign, publicOf(t, f, "life", 2))}); err != nil {
		t.Fatal(err)
	}
	if s, _ := sc.Sign(ctx, &pecetv1.SignRequest{Key: "life", Input: &pecetv1.SignRequest_Data{Data: data}}); s.GetVersion() != 1 {
		t.Fatalf("certified v2 took over before set-primary: v%d", s.GetVersion())
	}
	if _, err := ks.SetPrimaryVersion(ctx, &pecetv1.SetPrimaryVersionRequest{Alias: "life", Version: 2}); err != nil {
		t.Fatal(err)
	}
	s2, err := sc.Sign(ctx, &pecetv1.SignRequest{Key: "life", Input: &pecetv1.SignRequest_Data{Data: data}})
	if err != nil || s2.GetVersion() != 2 {
		t.Fatalf("sign after set-primary: %v %v", s2, err)
	}
	for _, sig := range [][]byte{s1.GetSignature(), s2.GetSignature()} {
		vr, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: sig, Detached: &pecetv1.VerifyRequest_Content{Content: data}})
		if err != nil || vr.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
			t.Fatalf("verify: %v %v", vr, err)
		}
	}

	// Destroy rules.
	_, err = ks.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "life", Version: 2})
	wantCode(t, "destroy primary", err, codes.FailedPrecondition)
	_, err = ks.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "life", Version: 1})
	wantCode(t, "destroy enabled", err, codes.FailedPrecondition)
	_, err = ks.DisableKeyVersion(ctx, &pecetv1.DisableKeyVersionRequest{Alias: "life", Version: 2})
	wantCode(t, "disable primary", err, codes.FailedPrecondition)
	if _, err := ks.DisableKeyVersion(ctx, &pecetv1.DisableKeyVersionRequest{Alias: "life", Version: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = sc.Sign(ctx, &pecetv1.SignRequest{Key: "life", Version: 1, Input: &pecetv1.SignRequest_Data{Data: data}})
	wantCode(t, "sign with disabled v1", err, codes.FailedPrecondition)
	d, err := ks.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "life", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	v1 := d.GetKey().GetVersions()[0]
	if v1.GetState() != pecetv1.KeyState_DESTROYED || v1.GetCertificateSha256() == "" || v1.GetPublicKeySha256() == "" || len(v1.GetCertificateChain()) == 0 {
		t.Fatalf("destroyed v1: %v", v1)
	}
	_, err = ks.EnableKeyVersion(ctx, &pecetv1.EnableKeyVersionRequest{Alias: "life", Version: 1})
	wantCode(t, "enable destroyed", err, codes.FailedPrecondition)
	// The signature made with the destroyed version still verifies.
	vr, err := sc.Verify(ctx, &pecetv1.VerifyRequest{Signature: s1.GetSignature(), Detached: &pecetv1.VerifyRequest_Content{Content: data}})
	if err != nil || vr.GetVerdict().GetStatus() != pecetv1.Verdict_VALID {
		t.Fatalf("verify after destroy: %v %v", vr, err)
	}

	// TIMESTAMP keys need exactly one critical timeStamping EKU.
	if _, err := ks.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "ts", Purpose: pecetv1.KeyPurpose_TIMESTAMP, Algorithm: pecetv1.KeyAlgorithm_EC_P256}); err != nil {
		t.Fatal(err)
	}
	tsPub := publicOf(t, f, "ts", 1)
	_, err = ks.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "ts", Chain: f.issue(t, "ts", devca.CMSSign, tsPub)})
	wantCode(t, "TSA without timeStamping EKU", err, codes.InvalidArgument)
	if _, err := ks.ImportCertificate(ctx, &pecetv1.ImportCertificateRequest{Alias: "ts", Chain: f.issue(t, "ts", devca.TSA, tsPub)}); err != nil {
		t.Fatalf("TSA certificate: %v", err)
	}
}

func TestExpiryWarning(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	ks := pecetv1.NewKeyServiceClient(f.dial(t, "officer"))
	// The fixture's certificates: check how long they live, then move the
	// clock to just inside and just outside the 30-day window.
	k, err := ks.GetKey(ctx, &pecetv1.GetKeyRequest{Alias: "client-sign"})
	if err != nil || k.GetWarning() != "" {
		t.Fatalf("fresh key: %q %v", k.GetWarning(), err)
	}
	notAfter := k.GetVersions()[0].GetNotAfter().AsTime()
	f.clock.Advance(time.Until(notAfter) - 29*24*time.Hour)
	k, _ = ks.GetKey(ctx, &pecetv1.GetKeyRequest{Alias: "client-sign"})
	if !strings.Contains(k.GetWarning(), "expires on") {
		t.Errorf("29 days before expiry: %q", k.GetWarning())
	}
	f.clock.Advance(30 * 24 * time.Hour)
	l, _ := ks.ListKeys(ctx, &pecetv1.ListKeysRequest{})
	for _, k := range l.GetKeys() {
		if k.GetAlias() == "client-sign" && !strings.Contains(k.GetWarning(), "expired") {
			t.Errorf("after expiry: %q", k.GetWarning())
		}
	}
}

// TestDualControl: a second officer must approve; self-approval is refused;
// requests expire.
func TestDualControl(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	alice := pecetv1.NewKeyServiceClient(f.dial(t, "officer"))
	bob := pecetv1.NewKeyServiceClient(f.dial(t, "officer-2"))

	ch, err := alice.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "dual-sign", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256})
	pr := ch.GetPendingRequest()
	if err != nil || pr.GetId() == "" || pr.GetOperation() != "create" || pr.GetRequestedBy() != "officer" || ch.GetKey() != nil {
		t.Fatalf("create: %v %v", ch, err)
	}
	if _, err := f.store.GetKey(ctx, "dual-sign"); err == nil {
		t.Fatal("the key exists before approval")
	}
	// Not for aliases outside the globs.
	if ch, err := alice.CreateKey(ctx, &pecetv1.CreateKeyRequest{Alias: "solo", Purpose: pecetv1.KeyPurpose_SIGN, Algorithm: pecetv1.KeyAlgorithm_EC_P256}); err != nil || ch.GetPendingRequest() != nil {
		t.Fatalf("solo: %v %v", ch, err)
	}
	lr, err := bob.ListRequests(ctx, &pecetv1.ListRequestsRequest{})
	if err != nil || len(lr.GetRequests()) != 1 || lr.GetRequests()[0].GetId() != pr.GetId() {
		t.Fatalf("list: %v %v", lr, err)
	}
	_, err = alice.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: pr.GetId()})
	wantCode(t, "self-approval", err, codes.PermissionDenied)
	done, err := bob.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: pr.GetId()})
	if err != nil || done.GetKey().GetAlias() != "dual-sign" || done.GetVersion() != 1 || done.GetPendingRequest() != nil {
		t.Fatalf("approve: %v %v", done, err)
	}
	_, err = bob.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: pr.GetId()})
	wantCode(t, "approve twice", err, codes.NotFound)

	// Destroy of the pending version 1: a request; refused up front for the
	// primary or an enabled version.
	_, err = alice.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "dual-sign", Version: 7})
	wantCode(t, "destroy unknown version", err, codes.NotFound)
	ch, err = alice.DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "dual-sign", Version: 1})
	if err != nil || ch.GetPendingRequest() == nil {
		t.Fatalf("destroy request: %v %v", ch, err)
	}
	destroyID := ch.GetPendingRequest().GetId()

	// Expiry: past the TTL the request cannot be approved, and leaves the list.
	f.clock.Advance(dualControl.RequestTTL + time.Second)
	_, err = bob.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: destroyID})
	wantCode(t, "expired", err, codes.FailedPrecondition)
	if lr, _ := bob.ListRequests(ctx, &pecetv1.ListRequestsRequest{}); len(lr.GetRequests()) != 0 {
		t.Fatalf("expired request still listed: %v", lr)
	}
	if k, _ := f.store.GetKey(ctx, "dual-sign"); k.Versions[0].State != keystore.StatePendingCertificate {
		t.Fatalf("expired request was carried out: %+v", k.Versions[0])
	}
	_, err = bob.ApproveRequest(ctx, &pecetv1.ApproveRequestRequest{Id: "no-such-request"})
	wantCode(t, "unknown id", err, codes.NotFound)

	// The audit log tells the story: pending, denied self-approval, approval.
	var outcomes []string
	for _, e := range auditEvents(t, f.auditFile) {
		if e.Phase == audit.PhaseEnd && e.Key == "dual-sign" {
			outcomes = append(outcomes, e.Caller+":"+e.RPC[strings.LastIndex(e.RPC, "/")+1:]+":"+e.Outcome)
		}
	}
	want := "officer:CreateKey:pending officer:ApproveRequest:denied officer-2:ApproveRequest:ok"
	if got := strings.Join(outcomes, " "); !strings.HasPrefix(got, want) {
		t.Errorf("audit outcomes:\n got %s\nwant %s…", got, want)
	}
}

// TestAuditLines: a Sign leaves a begin line with the SHA-256 of the data
// (never the data) and an end line with the version used.
func TestAuditLines(t *testing.T) {
	f := newFixture(t)
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	secret := []byte("<PRIHL><rc>8001011234</rc></PRIHL>")
	if _, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: secret}}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(secret)
	events := auditEvents(t, f.auditFile)
	if len(events) != 2 {
		t.Fatalf("%d events: %+v", len(events), events)
	}
	b, e := events[0], events[1]
	if b.Phase != audit.PhaseBegin || b.Caller != "client" || b.Role != "client" || b.Key != "client-sign" || b.InputSHA256 != hex.EncodeToString(sum[:]) || b.RPC != pecetv1.SignService_Sign_FullMethodName {
		t.Errorf("begin: %+v", b)
	}
	if e.Phase != audit.PhaseEnd || e.Call != b.Call || e.Outcome != audit.OutcomeOK || e.Version != 1 {
		t.Errorf("end: %+v", e)
	}
	raw, _ := os.ReadFile(f.auditFile)
	if bytes.Contains(raw, []byte("8001011234")) || bytes.Contains(raw, []byte("PRIHL")) {
		t.Error("the audit log contains the signed content")
	}
}

// TestAuditFailClosed: when the audit log cannot be written, key operations
// are refused with Unavailable and no signature leaves the service.
func TestAuditFailClosed(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	f := newFixtureOpts(t, fixtureOpts{auditFile: "/dev/full"})
	sc := pecetv1.NewSignServiceClient(f.dial(t, "client"))
	resp, err := sc.Sign(ctxT(t), &pecetv1.SignRequest{Key: "client-sign", Input: &pecetv1.SignRequest_Data{Data: []byte("x")}})
	wantCode(t, "sign", err, codes.Unavailable)
	if len(resp.GetSignature()) != 0 {
		t.Fatal("a signature left without its audit record")
	}
	ks := pecetv1.NewKeyServiceClient(f.dial(t, "officer"))
	_, err = ks.RotateKey(ctxT(t), &pecetv1.RotateKeyRequest{Alias: "client-sign"})
	wantCode(t, "rotate", err, codes.Unavailable)
	if k, _ := f.store.GetKey(context.Background(), "client-sign"); len(k.Versions) != 1 {
		t.Fatal("rotation ran without an audit record")
	}
	// Reads that touch no key still work.
	if _, err := ks.ListKeys(ctxT(t), &pecetv1.ListKeysRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditDecrypt: a Decrypt is audited with the key version found in the
// RecipientInfo and the SHA-256 of the CMS input, never the plaintext.
func TestAuditDecrypt(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	secret := []byte("<PRIHL><rc>8001011234</rc></PRIHL>")
	er, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "wide-client")).Encrypt(ctx, &pecetv1.EncryptRequest{Data: secret, RecipientKeys: []string{"gateway-decrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "gateway")).Decrypt(ctx, &pecetv1.DecryptRequest{Enveloped: er.GetEnveloped()}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(er.GetEnveloped())
	var begin, end *audit.Event
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC == pecetv1.EnvelopeService_Decrypt_FullMethodName {
			switch e.Phase {
			case audit.PhaseBegin:
				begin = &e
			case audit.PhaseEnd:
				end = &e
			}
		}
	}
	if begin == nil || end == nil || begin.InputSHA256 != hex.EncodeToString(sum[:]) || begin.Caller != "gateway" ||
		end.Key != "gateway-decrypt" || end.Version != 1 || end.Outcome != audit.OutcomeOK || end.Call != begin.Call {
		t.Fatalf("decrypt audit lines: %+v %+v", begin, end)
	}
	raw, _ := os.ReadFile(f.auditFile)
	if bytes.Contains(raw, []byte("8001011234")) {
		t.Error("the audit log contains the plaintext")
	}
}

// TestAuditTimestamp: gRPC Timestamp and POST /tsa are audited like the
// other key operations.
func TestAuditTimestamp(t *testing.T) {
	f := newFixture(t)
	digest := sha256.Sum256([]byte("data"))
	if _, err := pecetv1.NewTimestampServiceClient(f.dial(t, "client")).Timestamp(ctxT(t), &pecetv1.TimestampRequest{Digest: digest[:]}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.srv.HTTP())
	defer srv.Close()
	// Only a well-formed request is audited (TestTSAMalformedNotAudited).
	body := tsaQuery(t)
	resp, err := http.Post(srv.URL+"/tsa", "application/timestamp-query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bodySum := sha256.Sum256(body)
	digestSum := sha256.Sum256(digest[:]) // the input is the digest; the log has its hash
	var got []string
	for _, e := range auditEvents(t, f.auditFile) {
		switch {
		case e.RPC == pecetv1.TimestampService_Timestamp_FullMethodName && e.Phase == audit.PhaseBegin && e.InputSHA256 == hex.EncodeToString(digestSum[:]):
			got = append(got, "grpc-begin")
		case e.RPC == pecetv1.TimestampService_Timestamp_FullMethodName && e.Phase == audit.PhaseEnd && e.Outcome == audit.OutcomeOK:
			got = append(got, "grpc-end")
		case e.RPC == "POST /tsa" && e.Phase == audit.PhaseBegin && e.InputSHA256 == hex.EncodeToString(bodySum[:]) && strings.HasPrefix(e.Caller, "http:"):
			got = append(got, "http-begin")
		case e.RPC == "POST /tsa" && e.Phase == audit.PhaseEnd && e.Outcome == audit.OutcomeOK:
			got = append(got, "http-end")
		}
	}
	if strings.Join(got, " ") != "grpc-begin grpc-end http-begin http-end" {
		t.Fatalf("timestamp audit lines: %v", got)
	}
}

// TestAuditOverlongAlias: an alias longer than any valid one is refused as
// InvalidArgument, not as an unavailable audit log (its begin line would
// have exceeded audit.MaxLine), and the audit records its start and length.
func TestAuditOverlongAlias(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("a", 20000)
	_, err := pecetv1.NewSignServiceClient(f.dial(t, "wide-client")).Sign(ctxT(t), &pecetv1.SignRequest{Key: long, Input: &pecetv1.SignRequest_Data{Data: []byte("x")}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Sign with a 20000-byte alias: %v, want InvalidArgument", err)
	}
	var seen bool
	for _, e := range auditEvents(t, f.auditFile) {
		if e.RPC == pecetv1.SignService_Sign_FullMethodName && e.Phase == audit.PhaseBegin {
			seen = true
			if e.Key != strings.Repeat("a", 64)+"…(20000 bytes)" {
				t.Fatalf("begin line key %q", e.Key)
			}
		}
	}
	if !seen {
		t.Fatal("no begin line for the call")
	}
}

// TestAuditDeniedNamesTarget: a call refused by authorisation is audited
// with the key alias and version it asked for (an overlong alias cut as
// begin lines cut it), so that the log says what was tried.
func TestAuditDeniedNamesTarget(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("b", 5000)
	cases := []struct {
		name, rpc, key string
		version        int
		do             func(context.Context, *grpc.ClientConn) error
	}{
		{"sign as gateway", pecetv1.SignService_Sign_FullMethodName, "client-sign", 3, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewSignServiceClient(cc).Sign(ctx, &pecetv1.SignRequest{Key: "client-sign", Version: 3, Input: &pecetv1.SignRequest_Data{Data: []byte("x")}})
			return err
		}},
		{"destroy as gateway", pecetv1.KeyService_DestroyKeyVersion_FullMethodName, "client-sign", 1, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewKeyServiceClient(cc).DestroyKeyVersion(ctx, &pecetv1.DestroyKeyVersionRequest{Alias: "client-sign", Version: 1})
			return err
		}},
		{"decrypt with an overlong alias", pecetv1.EnvelopeService_Decrypt_FullMethodName, strings.Repeat("b", 64) + "…(5000 bytes)", 0, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := pecetv1.NewEnvelopeServiceClient(f.dial(t, "client")).Decrypt(ctx, &pecetv1.DecryptRequest{Key: long, Enveloped: []byte{0x30}})
			return err
		}},
	}
	cc := f.dial(t, "gateway")
	for _, c := range cases {
		if err := c.do(ctxT(t), cc); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s: %v, want PermissionDenied", c.name, err)
		}
	}
	events := auditEvents(t, f.auditFile)
	for _, c := range cases {
		found := false
		for _, e := range events {
			if e.Phase == audit.PhaseDenied && e.RPC == c.rpc {
				found = true
				if e.Key != c.key || e.Version != c.version {
					t.Errorf("%s: denied line names key %q version %d, want %q %d", c.name, e.Key, e.Version, c.key, c.version)
				}
			}
		}
		if !found {
			t.Errorf("%s: no denied line", c.name)
		}
	}
}
