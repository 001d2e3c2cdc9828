package policy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/devca"
)

// TestTrustedListTimestampServices: a TSA/QTST service of the trusted
// list makes its TSU certificate a trust anchor for time-stamping (only)
// while the service is granted, as CA/QC services anchor signers: a
// qualified TSA is trusted through the list even when its issuing CA is
// not a granted CA/QC service.
func TestTrustedListTimestampServices(t *testing.T) {
	now := time.Now()
	ca, err := devca.NewCA("TSA issuing CA (not on the list)", now.Add(-72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tsu, err := ca.Issue("Qualified TSA - TSU 1", devca.TSA, key.Public(), now.Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	withdrawn := now.Add(-24 * time.Hour)
	list := func(history ...ServiceStatus) *TrustedList {
		return &TrustedList{Territory: "CZ", Services: []TrustService{{Provider: "Qualified TSP", Name: "QTSA, TSU 1",
			Type: "http://uri.etsi.org/TrstSvc/Svctype/TSA/QTST", Certs: []*x509.Certificate{tsu}, History: history}}}
	}
	granted := ServiceStatus{Status: "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/granted", Start: now.AddDate(-1, 0, 0)}
	gone := ServiceStatus{Status: "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/withdrawn", Start: withdrawn}
	for _, tc := range []struct {
		name    string
		tl      *TrustedList
		purpose Purpose
		at      time.Time
		want    Status
	}{
		{"granted, time-stamping", list(granted), PurposeTimestamping, now, Valid},
		{"granted, signing", list(granted), PurposeSigning, now, Indeterminate},
		{"withdrawn a day ago, now", list(gone, granted), PurposeTimestamping, now, Indeterminate},
		{"withdrawn a day ago, judged before", list(gone, granted), PurposeTimestamping, withdrawn.Add(-time.Hour), Valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine("tl", &Policy{Name: "tl", TrustedList: tc.tl, Revocation: RevocationOff})
			if err != nil {
				t.Fatal(err)
			}
			v := e.Validate(Request{Leaf: tsu, Purpose: tc.purpose, At: tc.at})
			if v.Status != tc.want {
				t.Fatalf("got %v %v, want %v", v.Status, v.Reasons, tc.want)
			}
		})
	}
}
