package policy

import (
	"crypto"
	"crypto/x509"
	"time"
)

// AlgorithmJudge judges the algorithms of a signature itself (its digest
// and signature algorithm, not its certificates') under a policy's
// algorithm suite; Engine implements it. Signature verification asks it
// before refusing a historical algorithm such as SHA-1 outright.
type AlgorithmJudge interface {
	// JudgeSignatureAlgorithm returns ok=false when the policy has no
	// suite that dates the hash (the caller's fixed rules apply).
	// Otherwise the verdict is VALID when the suite accepts the digest h
	// and the signature algorithm alg with signerKey at "at", the time a
	// proof of existence gives, else INDETERMINATE with
	// CRYPTO_CONSTRAINTS_FAILURE_NO_POE (ETSI EN 319 102-1 5.2.8).
	JudgeSignatureAlgorithm(policyName string, h crypto.Hash, alg x509.SignatureAlgorithm, signerKey crypto.PublicKey, at time.Time) (v Verdict, ok bool)
}

var hashOIDs = map[crypto.Hash]string{
	crypto.MD5: "1.2.840.113549.2.5", crypto.SHA1: "1.3.14.3.2.26", crypto.SHA224: "2.16.840.1.101.3.4.2.4",
	crypto.SHA256: "2.16.840.1.101.3.4.2.1", crypto.SHA384: "2.16.840.1.101.3.4.2.2", crypto.SHA512: "2.16.840.1.101.3.4.2.3",
}

// JudgeSignatureAlgorithm implements AlgorithmJudge.
func (e *Engine) JudgeSignatureAlgorithm(name string, h crypto.Hash, alg x509.SignatureAlgorithm, signerKey crypto.PublicKey, at time.Time) (Verdict, bool) {
	if name == "" {
		name = e.def
	}
	p, ok := e.policies[name]
	if !ok || p.Algorithms == nil || !p.Algorithms.Suite.dates(hashOIDs[h]) {
		return Verdict{}, false
	}
	v := Verdict{Status: Valid}
	if msg := p.Algorithms.Suite.check(hashOIDs[h], nil, at); msg != "" {
		addAlgProblems(&v, []algProblem{{"the signature's digest algorithm: " + msg, true}})
	}
	if info, ok := sigAlgs[alg]; ok && info.hash == h {
		// The digest was judged above; the signature algorithm with its key.
		_, _, params := keyParams(signerKey)
		if msg := p.Algorithms.Suite.check(info.oid, params, at); msg != "" {
			addAlgProblems(&v, []algProblem{{"the signature algorithm: " + msg, true}})
		}
	}
	return v, true
}

var _ AlgorithmJudge = (*Engine)(nil)
