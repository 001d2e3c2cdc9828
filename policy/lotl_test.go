package policy

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestLOTLReal: the real EU LOTL verifies with its signer (the test takes
// it from the LOTL's KeyInfo; an operator takes it from the Official
// Journal), points to the Czech XML list, and the Czech list verifies with
// the certificates of that pointer.
func TestLOTLReal(t *testing.T) {
	data := readTL(t, "eu-lotl.xml")
	oj, err := TrustedListSigners(data)
	if err != nil || len(oj) == 0 {
		t.Fatalf("no signer in eu-lotl.xml: %v", err)
	}
	l, err := ResolveLOTL(context.Background(), data, oj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.SequenceNumber != "248" || len(l.Pivots) != 0 {
		t.Errorf("sequence %q pivots %v", l.SequenceNumber, l.Pivots)
	}
	p, err := l.Pointer("CZ")
	if err != nil {
		t.Fatal(err)
	}
	if p.Location != "https://tsl.gov.cz/publ/TSL_CZ.xtsl" {
		t.Errorf("CZ location %q", p.Location)
	}
	cz, err := LoadTrustedList(readTL(t, "CZ.xml"), p.Certs)
	if err != nil || cz.Territory != "CZ" {
		t.Fatalf("CZ list with the LOTL's certificates: %v", err)
	}
	if _, err := l.Pointer("XX"); !errors.Is(err, ErrLOTLTerritory) {
		t.Errorf("territory XX: %v", err)
	}
	// A key the LOTL does not name is refused, with the reason.
	_, other := testTLSigner(t)
	if _, err := ResolveLOTL(context.Background(), data, []*x509.Certificate{other}, nil); !errors.Is(err, ErrLOTLPivot) || !errors.Is(err, ErrTrustedListSig) {
		t.Errorf("wrong lotl_signer: %v", err)
	}
	// The national list is no LOTL.
	if _, err := LoadLOTL(readTL(t, "CZ.xml"), p.Certs); !errors.Is(err, ErrLOTL) {
		t.Errorf("CZ.xml as LOTL: %v", err)
	}
}

func sdis(certs []*x509.Certificate) string {
	var b strings.Builder
	b.WriteString("<ServiceDigitalIdentities>")
	for _, c := range certs {
		fmt.Fprintf(&b, "<ServiceDigitalIdentity><DigitalId><X509Certificate>%s</X509Certificate></DigitalId></ServiceDigitalIdentity>", base64.StdEncoding.EncodeToString(c.Raw))
	}
	b.WriteString("</ServiceDigitalIdentities>")
	return b.String()
}

// testLOTL is the real EU LOTL with the certificates of its pointer to
// itself replaced by next (the keys it announces for later LOTLs), those
// of its pointer to the Czech XML list by cz, pivots added to its
// SchemeInformationURI (newest first), re-signed with key.
func testLOTL(t testing.TB, key *rsa.PrivateKey, next, cz []*x509.Certificate, pivots ...string) []byte {
	t.Helper()
	data := readTL(t, "eu-lotl.xml")
	replaceBefore := func(marker string, certs []*x509.Certificate) {
		at := bytes.Index(data, []byte(marker))
		if at < 0 {
			t.Fatalf("%s not in eu-lotl.xml", marker)
		}
		i := bytes.LastIndex(data[:at], []byte("<ServiceDigitalIdentities>"))
		j := bytes.LastIndex(data[:at], []byte("</ServiceDigitalIdentities>")) + len("</ServiceDigitalIdentities>")
		data = append(append(bytes.Clone(data[:i]), sdis(certs)...), data[j:]...)
	}
	replaceBefore("<TSLLocation>https://ec.europa.eu/tools/lotl/eu-lotl.xml</TSLLocation>", next)
	replaceBefore("<TSLLocation>https://tsl.gov.cz/publ/TSL_CZ.xtsl</TSLLocation>", cz)
	var uris string
	for _, p := range pivots {
		uris += `<URI xml:lang="en">` + p + `</URI>`
	}
	data = bytes.Replace(data, []byte("<SchemeInformationURI>"), []byte("<SchemeInformationURI>"+uris), 1)
	out, err := ResignTrustedList(data, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLOTLPivots: when the configured LOTL signer is not the current
// LOTL's, the pivots the LOTL names are followed oldest first, each
// verified with the certificates the previous one announced (older
// pivots than the configured signer are skipped); a broken
// link, a missing pivot, a LOTL without pivots or too many pivots is
// refused with ErrLOTLPivot.
func TestLOTLPivots(t *testing.T) {
	k0, c0 := testTLSigner(t) // in the Official Journal
	k1, c1 := testTLSigner(t)
	k2, c2 := testTLSigner(t)
	_, cz := testTLSigner(t)
	const urlA, urlB = "https://lotl.test/eu-lotl-pivot-1.xml", "https://lotl.test/eu-lotl-pivot-2.xml"
	pivotA := testLOTL(t, k0, []*x509.Certificate{c1}, nil) // oldest: signed by the OJ key, announces k1
	pivotB := testLOTL(t, k1, []*x509.Certificate{c2}, nil) // signed by k1, announces k2
	rogueB := testLOTL(t, k0, []*x509.Certificate{c2}, nil) // signed by a key A did not announce for it
	current := testLOTL(t, k2, []*x509.Certificate{c2}, []*x509.Certificate{cz}, urlB, urlA)
	many := make([]string, MaxLOTLPivots+1)
	for i := range many {
		many[i] = fmt.Sprintf("https://lotl.test/p%d.xml", i)
	}
	fetchFrom := func(m map[string][]byte) func(context.Context, string) ([]byte, error) {
		return func(_ context.Context, url string) ([]byte, error) {
			if b, ok := m[url]; ok {
				return b, nil
			}
			return nil, ErrTrustedListFetch
		}
	}
	good := map[string][]byte{urlA: pivotA, urlB: pivotB}
	tests := []struct {
		name    string
		data    []byte
		signer  *x509.Certificate
		pivots  map[string][]byte
		want    error
		wantMsg string
	}{
		{"direct: the signer is the current one", current, c2, nil, nil, ""},
		{"through two pivots", current, c0, good, nil, ""},
		{"a later OJ key: the older pivot skipped", current, c1, good, nil, ""},
		{"no pivot verifies with the signer", current, cz, good, ErrLOTLPivot, "neither"},
		{"a pivot signed by a key not announced", current, c0, map[string][]byte{urlA: pivotA, urlB: rogueB}, ErrLOTLPivot, urlB},
		{"a pivot cannot be fetched", current, c0, map[string][]byte{urlA: pivotA}, ErrLOTLPivot, urlB},
		{"no pivots named", testLOTL(t, k2, []*x509.Certificate{c2}, []*x509.Certificate{cz}), c0, good, ErrLOTLPivot, "names no pivot"},
		{"too many pivots", testLOTL(t, k2, []*x509.Certificate{c2}, []*x509.Certificate{cz}, many...), c0, good, ErrLOTLPivot, "at most"},
		{"current LOTL changed after signing", bytes.Replace(current, []byte("European Commission"), []byte("European CommissioN"), 1), c0, good, ErrLOTLPivot, "newest pivot"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := ResolveLOTL(context.Background(), tc.data, []*x509.Certificate{tc.signer}, fetchFrom(tc.pivots))
			if !errors.Is(err, tc.want) || (err != nil && !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("err = %v, want %v (%q)", err, tc.want, tc.wantMsg)
			}
			if err != nil {
				return
			}
			p, err := l.Pointer("CZ")
			if err != nil || len(p.Certs) != 1 || !p.Certs[0].Equal(cz) {
				t.Fatalf("CZ pointer %v %v", p, err)
			}
		})
	}
}

// FuzzLOTL: reading a list of lists (its pointers and pivots, read before
// the signature is known to verify when pivots are followed) never panics.
func FuzzLOTL(f *testing.F) {
	f.Add([]byte(`<TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#"><SchemeInformation><TSLType>http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists</TSLType><SchemeInformationURI><URI>https://x/p.xml</URI></SchemeInformationURI><PointersToOtherTSL><OtherTSLPointer><ServiceDigitalIdentities><ServiceDigitalIdentity><DigitalId><X509Certificate>AAAA</X509Certificate></DigitalId></ServiceDigitalIdentity></ServiceDigitalIdentities><TSLLocation>https://x/CZ.xml</TSLLocation><AdditionalInformation><OtherInformation><SchemeTerritory>CZ</SchemeTerritory></OtherInformation></AdditionalInformation></OtherTSLPointer></PointersToOtherTSL></SchemeInformation></TrustServiceStatusList>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := parseLOTL(data)
		if err != nil {
			return
		}
		if l, err := readLOTL(root); err == nil {
			_, _ = l.Pointer("CZ")
			l.lotlSigners()
		}
		_, _ = ResolveLOTL(context.Background(), data, nil, func(context.Context, string) ([]byte, error) { return data, nil })
	})
}
