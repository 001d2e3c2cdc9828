package policy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrMalformedSuite is returned for an unreadable algorithm suite file.
var ErrMalformedSuite = errors.New("policy: malformed algorithm suite")

// maxSuiteBytes bounds an ETSI TS 119 312 suite file (the ETSI one is 55 kB).
const maxSuiteBytes = 1 << 20

// AlgorithmSuite holds algorithm suitability dates in the machine-readable
// form of ETSI TS 119 312 (a dssc:SecuritySuitabilityPolicy, RFC 5698).
type AlgorithmSuite struct {
	byOID map[string]suiteAlgorithm
}

type suiteAlgorithm struct {
	name  string
	evals []suiteEval
}

type suiteEval struct {
	min   map[string]int // parameter name → minimum
	start time.Time
	end   time.Time // zero: no end
}

// ParseAlgorithmSuite reads a TS 119 312 suite.
func ParseAlgorithmSuite(data []byte) (*AlgorithmSuite, error) {
	if len(data) > maxSuiteBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedSuite, maxSuiteBytes)
	}
	if bytes.Contains(data, []byte("<!DOCTYPE")) {
		return nil, fmt.Errorf("%w: a DOCTYPE is not allowed", ErrMalformedSuite)
	}
	var doc struct {
		Algorithms []struct {
			Name string   `xml:"AlgorithmIdentifier>Name"`
			OIDs []string `xml:"AlgorithmIdentifier>ObjectIdentifier"`
			Eval []struct {
				Params []struct {
					Name string `xml:"name,attr"`
					Min  *int   `xml:"Min"`
				} `xml:"Parameter"`
				Start string `xml:"Validity>Start"`
				End   string `xml:"Validity>End"`
			} `xml:"Evaluation"`
		} `xml:"Algorithm"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedSuite, err)
	}
	s := &AlgorithmSuite{byOID: map[string]suiteAlgorithm{}}
	for _, a := range doc.Algorithms {
		alg := suiteAlgorithm{name: strings.TrimSpace(a.Name)}
		for _, e := range a.Eval {
			ev := suiteEval{min: map[string]int{}}
			for _, p := range e.Params {
				if p.Min != nil {
					ev.min[p.Name] = *p.Min
				}
			}
			var err error
			if ev.start, err = suiteDate(e.Start); err != nil {
				return nil, err
			}
			if ev.end, err = suiteDate(e.End); err != nil {
				return nil, err
			}
			alg.evals = append(alg.evals, ev)
		}
		for _, o := range a.OIDs {
			s.byOID[strings.TrimSpace(o)] = alg
		}
	}
	if len(s.byOID) == 0 {
		return nil, fmt.Errorf("%w: no algorithms", ErrMalformedSuite)
	}
	return s, nil
}

// suiteDate reads xs:date values such as 2029-01-01+00:00 or full times.
func suiteDate(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02Z07:00", "2006-01-02", time.RFC3339, "2006-01-02T15:04:05.000Z07:00"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: date %q", ErrMalformedSuite, v)
}

// check says why the algorithm (by OID) with these parameters is not
// acceptable at t, or "" when it is. Algorithms the suite does not list
// are left to the other rules.
func (s *AlgorithmSuite) check(oid string, params map[string]int, at time.Time) string {
	a, ok := s.byOID[oid]
	if !ok {
		return ""
	}
	var latest time.Time
	fits := false
	for _, e := range a.evals {
		ok := true
		for name, min := range e.min {
			v, have := params[name]
			if !have || v < min {
				ok = false
			}
		}
		if !ok {
			continue
		}
		fits = true
		if !e.start.IsZero() && at.Before(e.start) {
			continue
		}
		if e.end.IsZero() || at.Before(e.end) {
			return ""
		}
		if e.end.After(latest) {
			latest = e.end
		}
	}
	if !fits {
		return fmt.Sprintf("%s with these key parameters is not suitable under ETSI TS 119 312", a.name)
	}
	return fmt.Sprintf("%s is not suitable after %s (ETSI TS 119 312)", a.name, latest.Format("2006-01-02"))
}

// AlgorithmRules are the algorithm requirements of a policy. A nil rule
// set or a zero field means the safe default, never "anything goes"
// (docs/security.md "Algorithms").
type AlgorithmRules struct {
	// Suite gives end dates per algorithm and key size; nil: not used.
	Suite *AlgorithmSuite
	// MinRSABits and MinECBits are floors on every key in the path; 0
	// means DefaultMinRSABits and DefaultMinECBits.
	MinRSABits int
	MinECBits  int
	// Hashes allowed in certificate signatures; empty means SHA-256,
	// SHA-384 and SHA-512.
	Hashes []crypto.Hash
}

// policyHashes are the hashes a policy's rules may name (config
// `hashes:`), with their object identifiers (the ETSI TS 119 312 suite is
// keyed by them). SHA-3 is there because TS 119 312 recommends it; Go's
// crypto/x509 has no SHA-3 certificate signature algorithms, so today it
// matters for CMS signatures (package signer) more than for paths.
var policyHashes = [...]struct {
	name string
	hash crypto.Hash
	oid  string
}{
	{"SHA256", crypto.SHA256, "2.16.840.1.101.3.4.2.1"},
	{"SHA384", crypto.SHA384, "2.16.840.1.101.3.4.2.2"},
	{"SHA512", crypto.SHA512, "2.16.840.1.101.3.4.2.3"},
	{"SHA3-256", crypto.SHA3_256, "2.16.840.1.101.3.4.2.8"},
	{"SHA3-384", crypto.SHA3_384, "2.16.840.1.101.3.4.2.9"},
	{"SHA3-512", crypto.SHA3_512, "2.16.840.1.101.3.4.2.10"},
}

// HashByName returns the hash a policy names: SHA256, SHA384, SHA512,
// SHA3-256, SHA3-384 or SHA3-512.
func HashByName(name string) (crypto.Hash, bool) {
	for _, h := range policyHashes {
		if h.name == name {
			return h.hash, true
		}
	}
	return 0, false
}

// HashOID returns the object identifier of a hash HashByName knows, else "".
func HashOID(h crypto.Hash) string {
	for _, ph := range policyHashes {
		if ph.hash == h {
			return ph.oid
		}
	}
	return ""
}

// The floors of a policy that names none: RSA below 2048 bits and curves
// below P-256 are not suitable for new work (ETSI TS 119 312, SOG-IS).
const (
	DefaultMinRSABits = 2048
	DefaultMinECBits  = 256
)

// defaultHashes are allowed in certificate signatures when a policy names
// none: the SHA-2 family; SHA-1 and MD5 have collisions.
var defaultHashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

// effective returns the rules with every unset field at its default; a
// nil receiver gives the defaults.
func (r *AlgorithmRules) effective() *AlgorithmRules {
	out := AlgorithmRules{}
	if r != nil {
		out = *r
	}
	if out.MinRSABits <= 0 {
		out.MinRSABits = DefaultMinRSABits
	}
	if out.MinECBits <= 0 {
		out.MinECBits = DefaultMinECBits
	}
	if len(out.Hashes) == 0 {
		out.Hashes = defaultHashes
	}
	return &out
}

// Describe says the rules in force for a person (ListPolicies,
// `pecet policy show`).
func (r *AlgorithmRules) Describe() string {
	e := r.effective()
	var hs []string
	for _, h := range e.Hashes {
		hs = append(hs, h.String())
	}
	s := fmt.Sprintf("RSA >= %d bits, EC >= %d bits, certificate signatures with %s", e.MinRSABits, e.MinECBits, strings.Join(hs, ", "))
	if e.Suite != nil {
		s += "; ETSI TS 119 312 suite dates"
	}
	if r == nil || (r.MinRSABits <= 0 && r.MinECBits <= 0 && len(r.Hashes) == 0) {
		s += " (pecet defaults)"
	}
	return s
}

type sigAlgInfo struct {
	oid, hashOID string
	hash         crypto.Hash
}

var sigAlgs = map[x509.SignatureAlgorithm]sigAlgInfo{
	x509.MD5WithRSA:       {"1.2.840.113549.1.1.4", "1.2.840.113549.2.5", crypto.MD5},
	x509.SHA1WithRSA:      {"1.2.840.113549.1.1.5", "1.3.14.3.2.26", crypto.SHA1},
	x509.SHA256WithRSA:    {"1.2.840.113549.1.1.11", "2.16.840.1.101.3.4.2.1", crypto.SHA256},
	x509.SHA384WithRSA:    {"1.2.840.113549.1.1.12", "2.16.840.1.101.3.4.2.2", crypto.SHA384},
	x509.SHA512WithRSA:    {"1.2.840.113549.1.1.13", "2.16.840.1.101.3.4.2.3", crypto.SHA512},
	x509.SHA256WithRSAPSS: {"1.2.840.113549.1.1.10", "2.16.840.1.101.3.4.2.1", crypto.SHA256},
	x509.SHA384WithRSAPSS: {"1.2.840.113549.1.1.10", "2.16.840.1.101.3.4.2.2", crypto.SHA384},
	x509.SHA512WithRSAPSS: {"1.2.840.113549.1.1.10", "2.16.840.1.101.3.4.2.3", crypto.SHA512},
	x509.ECDSAWithSHA1:    {"1.2.840.10045.4.1", "1.3.14.3.2.26", crypto.SHA1},
	x509.ECDSAWithSHA256:  {"1.2.840.10045.4.3.2", "2.16.840.1.101.3.4.2.1", crypto.SHA256},
	x509.ECDSAWithSHA384:  {"1.2.840.10045.4.3.3", "2.16.840.1.101.3.4.2.2", crypto.SHA384},
	x509.ECDSAWithSHA512:  {"1.2.840.10045.4.3.4", "2.16.840.1.101.3.4.2.3", crypto.SHA512},
	x509.DSAWithSHA1:      {"1.2.840.10040.4.3", "1.3.14.3.2.26", crypto.SHA1},
	x509.DSAWithSHA256:    {"2.16.840.1.101.3.4.3.2", "2.16.840.1.101.3.4.2.1", crypto.SHA256},
	x509.PureEd25519:      {"1.3.101.112", "", 0},
}

// keyParams returns the suite parameters and bit size of a public key.
func keyParams(pub any) (kind string, bits int, params map[string]int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		b := k.N.BitLen()
		return "RSA", b, map[string]int{"moduluslength": b}
	case *ecdsa.PublicKey:
		b := k.Curve.Params().BitSize
		return "EC", b, map[string]int{"plength": b, "qlength": b}
	case ed25519.PublicKey:
		return "Ed25519", 256, map[string]int{}
	}
	return "unknown", 0, nil
}

// algProblem is one algorithm finding; suite says it comes from the
// suite's dates (INDETERMINATE without a proof of existence, EN 319 102-1
// CRYPTO_CONSTRAINTS_FAILURE_NO_POE) rather than from a fixed rule
// (INVALID, WEAK_ALGORITHM).
type algProblem struct {
	msg   string
	suite bool
}

// add records the problems as a verdict's reasons.
func addAlgProblems(v *Verdict, ps []algProblem) {
	for _, p := range ps {
		if p.suite {
			v.Add(Indeterminate, CodeCryptoConstraintsNoPOE, p.msg+"; no proof of existence shows it was used before then")
		} else {
			v.Add(Invalid, CodeWeakAlgorithm, p.msg)
		}
	}
}

// checkKey gives the problems with a public key.
func (r *AlgorithmRules) checkKey(who string, pub any, at time.Time) []algProblem {
	var out []algProblem
	kind, bits, params := keyParams(pub)
	switch {
	case kind == "RSA" && bits < r.MinRSABits:
		out = append(out, algProblem{msg: fmt.Sprintf("%s: RSA key of %d bits, the policy requires at least %d", who, bits, r.MinRSABits)})
	case kind == "EC" && bits < r.MinECBits:
		out = append(out, algProblem{msg: fmt.Sprintf("%s: EC key of %d bits, the policy requires at least %d", who, bits, r.MinECBits)})
	case kind == "unknown":
		out = append(out, algProblem{msg: fmt.Sprintf("%s: unsupported public key algorithm", who)})
	}
	if r.Suite != nil && kind == "EC" {
		if msg := r.Suite.check("1.2.840.10045.2.1", params, at); msg != "" {
			out = append(out, algProblem{who + ": " + msg, true})
		}
	}
	return out
}

// checkSignature gives the problems with a certificate's signature made
// with signerKey.
func (r *AlgorithmRules) checkSignature(who string, alg x509.SignatureAlgorithm, signerKey any, at time.Time) []algProblem {
	info, ok := sigAlgs[alg]
	if !ok {
		return []algProblem{{msg: fmt.Sprintf("%s: unsupported signature algorithm %v", who, alg)}}
	}
	var out []algProblem
	hashes := r.Hashes
	if len(hashes) == 0 {
		hashes = defaultHashes
	}
	// A hash the suite dates is judged by the suite at the time judged
	// (historical SHA-1 with a proof of existence before its end date);
	// without a suite the list refuses it whatever the time.
	if info.hash != 0 && !slices.Contains(hashes, info.hash) && !r.Suite.dates(info.hashOID) {
		if info.hash == crypto.SHA1 || info.hash == crypto.MD5 {
			out = append(out, algProblem{msg: fmt.Sprintf("%s: signed with %v, which is refused for new signatures (collisions)", who, info.hash)})
		} else {
			out = append(out, algProblem{msg: fmt.Sprintf("%s: signed with %v, which the policy does not allow", who, info.hash)})
		}
	}
	if r.Suite != nil {
		if info.hashOID != "" {
			if msg := r.Suite.check(info.hashOID, nil, at); msg != "" {
				out = append(out, algProblem{who + ": " + msg, true})
			}
		}
		_, _, params := keyParams(signerKey)
		if msg := r.Suite.check(info.oid, params, at); msg != "" {
			out = append(out, algProblem{who + ": " + msg, true})
		}
	}
	return out
}

// dates reports whether the suite lists the algorithm (nil: no suite).
func (s *AlgorithmSuite) dates(oid string) bool {
	if s == nil || oid == "" {
		return false
	}
	_, ok := s.byOID[oid]
	return ok
}

// checkPath applies the rules to every signature and key of a path; a
// nil r applies the defaults.
func (r *AlgorithmRules) checkPath(p *Path, at time.Time) []algProblem {
	r = r.effective()
	var out []algProblem
	signer := p.Anchor
	if p.Anchor != nil {
		out = append(out, r.checkKey(fmt.Sprintf("trust anchor %q", p.Anchor.Subject.String()), p.Anchor.PublicKey, at)...)
	}
	for _, c := range p.Certs {
		who := fmt.Sprintf("%q", c.Subject.String())
		out = append(out, r.checkSignature(who, c.SignatureAlgorithm, signer.PublicKey, at)...)
		out = append(out, r.checkKey(who, c.PublicKey, at)...)
		signer = c
	}
	return out
}
