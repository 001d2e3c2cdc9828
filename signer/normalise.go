package signer

// NormaliseBER rewrites one BER-encoded ASN.1 element (a CMS ContentInfo)
// with definite, minimal lengths and flattened constructed strings, and
// returns in itself when it is already DER-shaped. It is the bounded
// normaliser Parse uses, exported so that pecet's other CMS parsers
// (envelope) share it rather than keep a second one: every length is checked
// against the remaining input before anything is allocated, nesting is
// limited to maxDepth, and the output is within a small constant of the
// input's size. Trailing bytes after the element are an error. Errors wrap
// ErrMalformed or ErrTooLarge.
func NormaliseBER(in []byte, maxDepth int) ([]byte, error) {
	if len(in) == 0 {
		return nil, malformedf("empty input")
	}
	if maxDepth <= 0 {
		maxDepth = DefaultLimits().MaxDepth
	}
	return normalise(in, maxDepth)
}
