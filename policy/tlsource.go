package policy

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/xmldsig"
)

// Errors of replacing a trusted list in force (docs/operations.md
// "Trusted lists"): the list in force stays when its successor fails.
var (
	// ErrTrustedListOlder: the new list's TSLSequenceNumber is lower than
	// the one in force (a replayed or rolled-back list).
	ErrTrustedListOlder = errors.New("policy: trusted list is older than the one in force")
	// ErrTrustedListStale: the new list is past its NextUpdate (plus the
	// policy's grace) already.
	ErrTrustedListStale = errors.New("policy: trusted list is past its next update")
	// ErrTrustedListFetch: the list could not be fetched from its URL.
	ErrTrustedListFetch = errors.New("policy: trusted list cannot be fetched")
)

// Sequence is the list's TSLSequenceNumber as a number (ETSI TS 119 612
// 5.3.2: a positive integer incremented with each issue).
func (l *TrustedList) Sequence() (uint64, error) {
	n, err := strconv.ParseUint(l.SequenceNumber, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w: TSLSequenceNumber %q is not a positive integer", ErrTrustedList, l.SequenceNumber)
	}
	return n, nil
}

// CheckReplacement decides whether next, whose signature has verified, may
// replace cur (nil when no list is in force) at now. A list with a lower
// sequence number than the one in force is refused (rollback), as is one
// already past its NextUpdate plus grace while a list is in force (it
// would make every path INDETERMINATE, where the one in force may still be
// current). The same sequence number is accepted: it is the same issue
// read again. At start (cur nil) only the sequence number is checked, so
// that pecetd starts with an outdated list as before, and judges paths to
// its anchors INDETERMINATE (TRUSTED_LIST_EXPIRED).
func CheckReplacement(cur, next *TrustedList, now time.Time, grace time.Duration) error {
	n, err := next.Sequence()
	if err != nil {
		return err
	}
	if cur == nil {
		return nil
	}
	c, err := cur.Sequence()
	if err == nil && n < c {
		return fmt.Errorf("%w: sequence %d, %d is in force", ErrTrustedListOlder, n, c)
	}
	if nu := next.NextUpdate; !nu.IsZero() && now.After(nu.Add(grace)) {
		return fmt.Errorf("%w: sequence %d was due to be replaced at %s", ErrTrustedListStale, n, nu.UTC().Format(time.RFC3339))
	}
	return nil
}

// FetchTrustedList GETs a trusted list from an https:// URL with client
// (whose Timeout, with ctx, bounds the fetch) and reads at most max bytes
// (MaxTrustedListBytes when 0); a longer body is refused, not truncated.
// The bytes are not trusted: LoadTrustedList verifies them.
func FetchTrustedList(ctx context.Context, client *http.Client, url string, max int64) ([]byte, error) {
	if !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("%w: %q is not an https:// URL", ErrTrustedListFetch, url)
	}
	if max <= 0 {
		max = MaxTrustedListBytes
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedListFetch, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedListFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %s", ErrTrustedListFetch, url, resp.Status)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTrustedListTooLarge, resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedListFetch, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTrustedListTooLarge, max)
	}
	return data, nil
}

// ResignTrustedList signs a trusted list that already carries an enveloped
// exclusive-C14N RSA-SHA256 signature again with key: it recomputes the
// digest of the reference to the whole document and the signature value,
// leaving the rest of the signature as it is. Tests use it to make lists
// with other sequence numbers and dates from the real Czech list (and a
// test signer), and a private trust scheme may use it to sign its own list;
// LoadTrustedList then needs the matching certificate as signer.
func ResignTrustedList(data []byte, key *rsa.PrivateKey) ([]byte, error) {
	out, err := xmldsig.ResignEnveloped(data, key)
	if errors.Is(err, xmldsig.ErrSignature) {
		return nil, fmt.Errorf("%w: %w", ErrTrustedListSig, err)
	}
	return out, err
}
