// Package dualcontrol holds the four-eyes requests of pecet's key
// management: an officer's request for an operation that config reserves
// for two officers (create, rotate, set-primary, destroy on chosen aliases),
// encoded as a small JSON document that the server stores on the token
// (keystore.PutRequest), so that every replica sharing the token sees it,
// and the rules for approving it: not expired, not by the officer who asked.
package dualcontrol

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors the server maps to gRPC codes (internal/grpcerr).
var (
	// ErrExpired: the request's TTL has passed; ask again.
	ErrExpired = errors.New("dualcontrol: request expired")
	// ErrSelfApproval: the approving officer is the one who asked.
	ErrSelfApproval = errors.New("dualcontrol: a request must be approved by a different officer")
	// ErrMalformed: a stored request cannot be read (not ours, or damaged).
	ErrMalformed = errors.New("dualcontrol: malformed request")
	// ErrNotAdmitted: a key version that dual control has not admitted (never
	// made primary by an approved set-primary) was asked to sign or decrypt.
	ErrNotAdmitted = errors.New("dualcontrol: key version not admitted")
	// ErrStale: what a request was made for changed before its approval
	// (the version's certificate was replaced); ask again.
	ErrStale = errors.New("dualcontrol: request is stale")
)

// OpImportCertificate is the request to store a certificate chain for a
// version in use (or the first one of an alias) while set-primary is
// dual-controlled: it is not configured on its own, it follows set-primary
// (docs/security.md "Dual control").
const OpImportCertificate = "import-certificate"

// Request is one pending operation.
type Request struct {
	Format    int    `json:"format"`
	ID        string `json:"id"`
	Operation string `json:"op"`
	Alias     string `json:"alias"`
	Version   int    `json:"version,omitempty"`
	Purpose   string `json:"purpose,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
	// Chain is the DER chain, leaf first, of an import-certificate request.
	Chain [][]byte `json:"chain,omitempty"`
	// CertSHA256 pins, for set-primary, the version's leaf certificate as
	// the requester saw it: approval refuses if it was replaced since.
	CertSHA256 string    `json:"cert_sha256,omitempty"`
	By         string    `json:"by"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
}

const format = 1

// New makes a request with a fresh random id (16 hex digits: ids are typed
// by officers, and 64 bits cannot be guessed within a request's lifetime).
func New(op, alias, by string, now time.Time, ttl time.Duration) (Request, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return Request{}, fmt.Errorf("dualcontrol: random id: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	return Request{Format: format, ID: hex.EncodeToString(b), Operation: op, Alias: alias, By: by,
		Created: now, Expires: now.Add(ttl)}, nil
}

// Marshal encodes the request for the token.
func (r Request) Marshal() ([]byte, error) { return json.Marshal(r) }

// Parse decodes a stored request.
func Parse(b []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if r.Format != format || r.ID == "" || r.Operation == "" || r.Alias == "" || r.By == "" {
		return Request{}, fmt.Errorf("%w: missing fields or format %d", ErrMalformed, r.Format)
	}
	return r, nil
}

// Expired reports whether the request can no longer be approved at now.
func (r Request) Expired(now time.Time) bool { return !now.Before(r.Expires) }

// CheckApproval says whether officer may approve r at now.
func (r Request) CheckApproval(officer string, now time.Time) error {
	if r.Expired(now) {
		return fmt.Errorf("%w: %s expired at %s", ErrExpired, r.ID, r.Expires.Format(time.RFC3339))
	}
	if officer == r.By {
		return fmt.Errorf("%w: %s asked for %s", ErrSelfApproval, officer, r.ID)
	}
	return nil
}
