package tsa

import (
	"errors"
	"fmt"
)

// Sentinel errors (errors.Is).
var (
	// ErrRejected: a request the TSA answers with PKIStatus rejection; the
	// error is a *Rejection carrying the failure info.
	ErrRejected = errors.New("tsa: request rejected")
	// ErrMalformed: a response or token that is not well-formed DER.
	ErrMalformed = errors.New("tsa: malformed time-stamp response or token")
	// ErrCertificateMismatch: the TSA certificate's key is not the token key.
	ErrCertificateMismatch = errors.New("tsa: the TSA certificate does not match the TSA key")
	// ErrExtKeyUsage: the TSA certificate lacks the one critical timeStamping
	// extended key usage RFC 3161 2.3 requires.
	ErrExtKeyUsage = errors.New("tsa: the TSA certificate must have exactly one extended key usage, timeStamping, marked critical")
	// ErrTimeNotAvailable: the clock is not trusted (reference offset above
	// the accuracy, or no recent check).
	ErrTimeNotAvailable = errors.New("tsa: time source not available")
	// ErrNoTSA: the time-stamping authority is not configured.
	ErrNoTSA = errors.New("tsa: no time-stamping authority configured")
	// ErrNotGranted: a response that carries no token.
	ErrNotGranted = errors.New("tsa: the time-stamp request was not granted")
)

// PKIStatus values (RFC 3161 2.4.2).
type PKIStatus int

// Statuses.
const (
	StatusGranted                PKIStatus = 0
	StatusGrantedWithMods        PKIStatus = 1
	StatusRejection              PKIStatus = 2
	StatusWaiting                PKIStatus = 3
	StatusRevocationWarning      PKIStatus = 4
	StatusRevocationNotification PKIStatus = 5
)

func (s PKIStatus) String() string {
	switch s {
	case StatusGranted:
		return "granted"
	case StatusGrantedWithMods:
		return "grantedWithMods"
	case StatusRejection:
		return "rejection"
	case StatusWaiting:
		return "waiting"
	case StatusRevocationWarning:
		return "revocationWarning"
	case StatusRevocationNotification:
		return "revocationNotification"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// FailureInfo is a PKIFailureInfo bit number (RFC 3161 2.4.2).
type FailureInfo int

// Failure infos.
const (
	// FailNone marks a response without failInfo.
	FailNone             FailureInfo = -1
	FailBadAlg           FailureInfo = 0
	FailBadRequest       FailureInfo = 2
	FailBadDataFormat    FailureInfo = 5
	FailTimeNotAvailable FailureInfo = 14
	FailUnacceptedPolicy FailureInfo = 15
	FailUnacceptedExt    FailureInfo = 16
	FailAddInfoNotAvail  FailureInfo = 17
	FailSystemFailure    FailureInfo = 25
)

func (f FailureInfo) String() string {
	switch f {
	case FailNone:
		return ""
	case FailBadAlg:
		return "badAlg"
	case FailBadRequest:
		return "badRequest"
	case FailBadDataFormat:
		return "badDataFormat"
	case FailTimeNotAvailable:
		return "timeNotAvailable"
	case FailUnacceptedPolicy:
		return "unacceptedPolicy"
	case FailUnacceptedExt:
		return "unacceptedExtension"
	case FailAddInfoNotAvail:
		return "addInfoNotAvailable"
	case FailSystemFailure:
		return "systemFailure"
	}
	return fmt.Sprintf("failInfo(%d)", int(f))
}

// Rejection is a request the TSA refuses. Text goes into the response's
// statusString, so it holds only fixed text and what the client sent.
type Rejection struct {
	Info FailureInfo
	Text string
}

func (r *Rejection) Error() string { return "tsa: rejected (" + r.Info.String() + "): " + r.Text }

// Is makes errors.Is(err, ErrRejected) hold.
func (r *Rejection) Is(target error) bool { return target == ErrRejected }

func reject(info FailureInfo, format string, args ...any) *Rejection {
	return &Rejection{Info: info, Text: fmt.Sprintf(format, args...)}
}
