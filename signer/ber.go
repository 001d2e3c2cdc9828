package signer

import (
	"errors"
	"fmt"

	"github.com/pecet-hsm/pecet/internal/cms"
)

// normalisePadded is cms.NormaliseBERPadded (the bounded BER normaliser:
// internal/cms/ber.go) with its findings reported as ErrMalformed or
// ErrTooLarge.
func normalisePadded(in []byte, maxDepth, maxZeros int) ([]byte, int, error) {
	out, padding, err := cms.NormaliseBERPadded(in, maxDepth, maxZeros)
	return out, padding, berError(err)
}

// berError turns a cms.BERError into the parseError of the same kind.
func berError(err error) error {
	var be *cms.BERError
	if !errors.As(err, &be) {
		return err
	}
	if errors.Is(be.Kind, cms.ErrBERTooLarge) {
		return &parseError{kind: ErrTooLarge, msg: be.Msg}
	}
	return &parseError{kind: ErrMalformed, msg: be.Msg}
}

// parseError is an ErrMalformed or ErrTooLarge with where and what, built
// up from the innermost finding outwards so the message reads
// "signer: malformed CMS SignedData: signer info 1: unknown digest ...".
type parseError struct {
	kind  error // ErrMalformed or ErrTooLarge
	msg   string
	cause error // an underlying error (x509), or nil
}

func (e *parseError) Error() string { return e.kind.Error() + ": " + e.msg }

func (e *parseError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

func malformedf(format string, args ...any) error {
	return &parseError{kind: ErrMalformed, msg: fmt.Sprintf(format, args...)}
}

func tooLargef(format string, args ...any) error {
	return &parseError{kind: ErrTooLarge, msg: fmt.Sprintf(format, args...)}
}

// within prefixes a parse error's message with where it happened.
func within(where string, err error) error {
	var pe *parseError
	if errors.As(err, &pe) {
		return &parseError{kind: pe.kind, msg: where + ": " + pe.msg, cause: pe.cause}
	}
	return err
}
