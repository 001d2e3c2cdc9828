package policy

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/xmldsig"
)

// The EU list of lists (LOTL) as the root of trust of a national trusted
// list (ETSI TS 119 612 5.3.13 pointers, 6.x pivot LOTLs; docs/security.md
// "Trusted lists").

// Errors of LOTL loading.
var (
	// ErrLOTL: the document is not a usable list of lists.
	ErrLOTL = errors.New("policy: malformed list of lists")
	// ErrLOTLTerritory: the LOTL has no XML pointer to the territory's list.
	ErrLOTLTerritory = errors.New("policy: the list of lists has no trusted list of the territory")
	// ErrLOTLPivot: the configured LOTL signer does not verify the LOTL and
	// no chain of pivot LOTLs leads from it to the LOTL's signer.
	ErrLOTLPivot = errors.New("policy: the list of lists does not verify through its pivots")
)

// MaxLOTLPivots bounds how many pivot LOTLs are followed (the EU LOTL has
// named a handful since 2019).
const MaxLOTLPivots = 8

const (
	tslTypeLOTLSuffix = "listofthelists"
	nsTSLAdditional   = "http://uri.etsi.org/02231/v2/additionaltypes#"
	mimeTSLXML        = "application/vnd.etsi.tsl+xml"
)

// LOTL is a list of lists whose signature verified.
type LOTL struct {
	SequenceNumber string
	IssueDate      time.Time
	NextUpdate     time.Time
	Pointers       []TSLPointer
	// Pivots are the URLs of the pivot LOTLs the list names in its
	// SchemeInformationURI (the entries ending in .xml), newest first.
	Pivots []string
	SHA256 []byte
}

// TSLPointer is an OtherTSLPointer: where a list is and which certificates
// may sign it.
type TSLPointer struct {
	Location  string
	Territory string
	Type      string
	MimeType  string
	Certs     []*x509.Certificate
	// Unreadable counts the pointer's certificates that did not parse.
	Unreadable int
}

// Pointer returns the pointer to the XML trusted list of territory (not to
// a list of lists, not to a PDF copy).
func (l *LOTL) Pointer(territory string) (TSLPointer, error) {
	for _, p := range l.Pointers {
		if strings.EqualFold(p.Territory, territory) && !isLOTLType(p.Type) && (p.MimeType == "" || p.MimeType == mimeTSLXML) && len(p.Certs) > 0 {
			return p, nil
		}
	}
	return TSLPointer{}, fmt.Errorf("%w: %q (an XML pointer with a readable certificate)", ErrLOTLTerritory, territory)
}

// lotlSigners are the certificates the LOTL announces for its own next
// issues: its pointer to a list of lists.
func (l *LOTL) lotlSigners() []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range l.Pointers {
		if isLOTLType(p.Type) {
			out = append(out, p.Certs...)
		}
	}
	return out
}

func isLOTLType(t string) bool { return strings.HasSuffix(strings.ToLower(t), tslTypeLOTLSuffix) }

// LoadLOTL checks the size, verifies the LOTL's enveloped signature with
// signers and reads its pointers.
func LoadLOTL(data []byte, signers []*x509.Certificate) (*LOTL, error) {
	root, err := parseLOTL(data)
	if err != nil {
		return nil, err
	}
	if err := verifyEnveloped(root, signers); err != nil {
		return nil, err
	}
	l, err := readLOTL(root)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	l.SHA256 = sum[:]
	return l, nil
}

func parseLOTL(data []byte) (*xmldsig.Node, error) {
	if len(data) > MaxTrustedListBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTrustedListTooLarge, len(data), MaxTrustedListBytes)
	}
	root, err := xmldsig.Parse(data)
	if err != nil {
		return nil, err
	}
	if root.Local() != "TrustServiceStatusList" || root.Space() != nsTSL {
		return nil, fmt.Errorf("%w: the document is not a TrustServiceStatusList", ErrLOTL)
	}
	si := root.Child(nsTSL, "SchemeInformation")
	if si == nil || !isLOTLType(strings.TrimSpace(si.Child(nsTSL, "TSLType").Text())) {
		return nil, fmt.Errorf("%w: its TSLType is not a list of lists", ErrLOTL)
	}
	return root, nil
}

func readLOTL(root *xmldsig.Node) (*LOTL, error) {
	si := root.Child(nsTSL, "SchemeInformation")
	l := &LOTL{SequenceNumber: strings.TrimSpace(si.Child(nsTSL, "TSLSequenceNumber").Text())}
	l.IssueDate, _ = time.Parse(time.RFC3339, strings.TrimSpace(si.Child(nsTSL, "ListIssueDateTime").Text()))
	if nu := si.Child(nsTSL, "NextUpdate"); nu != nil {
		l.NextUpdate, _ = time.Parse(time.RFC3339, strings.TrimSpace(nu.Child(nsTSL, "dateTime").Text()))
	}
	if u := si.Child(nsTSL, "SchemeInformationURI"); u != nil {
		for _, x := range u.ChildrenNamed(nsTSL, "URI") {
			if s := strings.TrimSpace(x.Text()); strings.HasSuffix(strings.ToLower(s), ".xml") {
				l.Pivots = append(l.Pivots, s)
			}
		}
	}
	ptrs := si.Child(nsTSL, "PointersToOtherTSL")
	if ptrs == nil {
		return nil, fmt.Errorf("%w: no PointersToOtherTSL", ErrLOTL)
	}
	for _, p := range ptrs.ChildrenNamed(nsTSL, "OtherTSLPointer") {
		tp := TSLPointer{Location: strings.TrimSpace(p.Child(nsTSL, "TSLLocation").Text())}
		if ids := p.Child(nsTSL, "ServiceDigitalIdentities"); ids != nil {
			for _, sdi := range ids.ChildrenNamed(nsTSL, "ServiceDigitalIdentity") {
				for _, di := range sdi.ChildrenNamed(nsTSL, "DigitalId") {
					x := di.Child(nsTSL, "X509Certificate")
					if x == nil {
						continue
					}
					// The real LOTL carries certificates Go refuses (a
					// negative RSA modulus in Germany's): one of them is
					// skipped, not the whole LOTL refused; a territory
					// left with none has no usable pointer.
					der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(x.Text()), ""))
					var c *x509.Certificate
					if err == nil {
						c, err = x509.ParseCertificate(der)
					}
					if err != nil {
						tp.Unreadable++
						continue
					}
					tp.Certs = append(tp.Certs, c)
				}
			}
		}
		if ai := p.Child(nsTSL, "AdditionalInformation"); ai != nil {
			for _, oi := range ai.ChildrenNamed(nsTSL, "OtherInformation") {
				if x := oi.Child(nsTSL, "TSLType"); x != nil {
					tp.Type = strings.TrimSpace(x.Text())
				}
				if x := oi.Child(nsTSL, "SchemeTerritory"); x != nil {
					tp.Territory = strings.TrimSpace(x.Text())
				}
				if x := oi.Child(nsTSLAdditional, "MimeType"); x != nil {
					tp.MimeType = strings.TrimSpace(x.Text())
				}
			}
		}
		l.Pointers = append(l.Pointers, tp)
	}
	return l, nil
}

// ResolveLOTL verifies the LOTL data with the operator's signers (from the
// Official Journal). When they do not verify it, it follows the pivot LOTLs
// the (not yet trusted) document names, oldest first: pivots are skipped
// until one verifies with signers; from there each next one, and finally
// data, must verify with the certificates the previous one announced in
// its pointer to the LOTL (ETSI TS 119 612 pivots). At most MaxLOTLPivots are fetched, with fetch
// (nil: pivots are not followed).
func ResolveLOTL(ctx context.Context, data []byte, signers []*x509.Certificate, fetch func(ctx context.Context, url string) ([]byte, error)) (*LOTL, error) {
	l, err := LoadLOTL(data, signers)
	if err == nil || !errors.Is(err, ErrTrustedListSig) {
		return l, err
	}
	root, perr := parseLOTL(data)
	if perr != nil {
		return nil, perr
	}
	unverified, perr := readLOTL(root)
	if perr != nil {
		return nil, perr
	}
	pivots := unverified.Pivots
	switch {
	case len(pivots) == 0:
		return nil, fmt.Errorf("%w: lotl_signer does not verify the list of lists and it names no pivot LOTLs (%w)", ErrLOTLPivot, err)
	case len(pivots) > MaxLOTLPivots:
		return nil, fmt.Errorf("%w: it names %d pivot LOTLs, at most %d are followed: configure a newer lotl_signer from the Official Journal", ErrLOTLPivot, len(pivots), MaxLOTLPivots)
	case fetch == nil:
		return nil, fmt.Errorf("%w: lotl_signer does not verify the list of lists and pivots cannot be fetched here", ErrLOTLPivot)
	}
	var trusted []*x509.Certificate // nil until a pivot verified with signers
	for i := len(pivots) - 1; i >= 0; i-- {
		b, err := fetch(ctx, pivots[i])
		if err != nil {
			return nil, fmt.Errorf("%w: pivot %s: %w", ErrLOTLPivot, pivots[i], err)
		}
		if trusted == nil {
			// Pivots older than the operator's signer are skipped: the
			// Official Journal may name a key of a later pivot.
			p, err := LoadLOTL(b, signers)
			if errors.Is(err, ErrTrustedListSig) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%w: pivot %s: %w", ErrLOTLPivot, pivots[i], err)
			}
			if trusted = p.lotlSigners(); len(trusted) == 0 {
				return nil, fmt.Errorf("%w: pivot %s announces no LOTL signer", ErrLOTLPivot, pivots[i])
			}
			continue
		}
		p, err := LoadLOTL(b, trusted)
		if err != nil {
			return nil, fmt.Errorf("%w: pivot %s does not verify with the certificates announced before it: %w", ErrLOTLPivot, pivots[i], err)
		}
		if trusted = p.lotlSigners(); len(trusted) == 0 {
			return nil, fmt.Errorf("%w: pivot %s announces no LOTL signer", ErrLOTLPivot, pivots[i])
		}
	}
	if trusted == nil {
		return nil, fmt.Errorf("%w: neither the list of lists nor any of its %d pivots verifies with lotl_signer", ErrLOTLPivot, len(pivots))
	}
	l, err = LoadLOTL(data, trusted)
	if err != nil {
		return nil, fmt.Errorf("%w: the list of lists does not verify with the certificates its newest pivot announced: %w", ErrLOTLPivot, err)
	}
	return l, nil
}
