package keystore

import (
	"context"
	"crypto"
	cryptorand "crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/miekg/pkcs11"
)

// Key lifecycle changes are read-modify-write cycles of the alias's
// metadata object. Within one Store they are serialised by s.mu; across
// processes sharing the token (replicas) PKCS#11 offers no lock and no
// compare-and-swap, but destroying an object normally succeeds for one
// process only. So a change writes the next generation as a new object and
// then destroys the object it read: the writer whose destroy succeeds has
// won; a writer whose object was destroyed by another has lost the race,
// removes what it wrote and runs its change again on a fresh read (see
// writeMeta for two destroys that both succeed, and docs/security.md
// "Replicas changing one key"). Each change reads the token afresh, never
// the cache.

// CreateKey generates version 1 of a new alias, PENDING_CERTIFICATE.
func (s *Store) CreateKey(ctx context.Context, alias string, p Purpose, a Algorithm) (Version, error) {
	if err := checkAlias(alias); err != nil {
		return Version{}, err
	}
	if err := checkPurposeAlgorithm(p, a); err != nil {
		return Version{}, err
	}
	return s.createAlias(ctx, alias, p, a, func(sh pkcs11.SessionHandle) (pub, priv pkcs11.ObjectHandle, err error) {
		return generate(s.p, sh, alias, 1, p, a)
	})
}

// createAlias makes version 1 of a new alias, PENDING_CERTIFICATE, for
// CreateKey and ImportKey: keys puts the key pair on the token (generated or
// imported), then the metadata object is written; if that fails the pair is
// destroyed again, so that no half-made alias is left.
func (s *Store) createAlias(ctx context.Context, alias string, p Purpose, a Algorithm, keys func(pkcs11.SessionHandle) (pub, priv pkcs11.ObjectHandle, err error)) (Version, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A change runs to its end once started, whatever the caller's deadline:
	// abandoning it would release s.mu while the token is still being
	// written, and the caller would be told it failed when it may not have.
	err := s.retryRace(alias, func() error {
		return s.withSession(context.WithoutCancel(ctx), func(sh pkcs11.SessionHandle) error {
			// Any object with this label, ours or not, makes the alias taken:
			// we never adopt or overwrite objects we did not make.
			hs, err := findObjects(s.p, sh, []*pkcs11.Attribute{attr(pkcs11.CKA_LABEL, alias)})
			if err != nil {
				return err
			}
			if len(hs) > 0 {
				return fmt.Errorf("%w: %q", ErrKeyExists, alias)
			}
			pub, priv, err := keys(sh)
			if err != nil {
				return err
			}
			undo := func() {
				_ = s.p.DestroyObject(sh, priv)
				_ = s.p.DestroyObject(sh, pub)
			}
			pubKey, err := readPublicKey(s.p, sh, pub)
			if err != nil {
				undo()
				return err
			}
			m := &meta{Format: metaFormat, Generation: 1, Purpose: p, Algorithm: a, Nonce: newNonce(), Versions: []metaVersion{
				{Version: 1, State: StatePendingCertificate, Created: now(), NeverPrimary: true, PublicSHA256: publicSum(pubKey)}}}
			h, err := createMeta(s.p, sh, alias, m)
			if err != nil {
				undo()
				return err
			}
			// Another replica may have created the alias at the same moment:
			// whoever sees a second metadata object gives way (both may, and
			// then both try again), so the one that saw none keeps it.
			metas, err := findObjects(s.p, sh, []*pkcs11.Attribute{
				attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, appName), attr(pkcs11.CKA_LABEL, alias)})
			if err != nil || len(metas) > 1 {
				_ = s.p.DestroyObject(sh, h)
				undo()
				if err != nil {
					return err
				}
				return errLostRace
			}
			return nil
		})
	})
	s.cache.invalidate(alias)
	if err != nil {
		return Version{}, err
	}
	return s.versionAfterChange(ctx, alias, 1)
}

// RotateKey generates the next version of an alias, PENDING_CERTIFICATE,
// with the alias's purpose and algorithm. The primary stays as it is until
// the new version is certified and made primary.
func (s *Store) RotateKey(ctx context.Context, alias string) (Version, error) {
	var next int
	err := s.change(ctx, alias, func(sh pkcs11.SessionHandle, e *entry) error {
		next = e.meta.lastVersion() + 1
		refreshIndex(s.p, sh)
		pub, priv, err := generate(s.p, sh, alias, next, e.meta.Purpose, e.meta.Algorithm)
		if err != nil {
			return err
		}
		pubKey, err := readPublicKey(s.p, sh, pub)
		if err != nil {
			_ = s.p.DestroyObject(sh, priv)
			_ = s.p.DestroyObject(sh, pub)
			return err
		}
		e.meta.Versions = append(e.meta.Versions, metaVersion{Version: next, State: StatePendingCertificate, Created: now(), NeverPrimary: true, PublicSHA256: publicSum(pubKey)})
		if err := writeMeta(s.p, sh, e); err != nil {
			_ = s.p.DestroyObject(sh, priv)
			_ = s.p.DestroyObject(sh, pub)
			return err
		}
		return nil
	})
	if err != nil {
		return Version{}, err
	}
	return s.versionAfterChange(ctx, alias, next)
}

// ImportCertificate stores the chain (leaf first) for a version after
// checking the leaf's public key is the version's key and that each
// certificate is issued by the next; the version becomes ENABLED, and primary
// when the alias had none. Importing again replaces the chain (renewal).
func (s *Store) ImportCertificate(ctx context.Context, alias string, version int, chain []*x509.Certificate) (Version, error) {
	if len(chain) == 0 || chain[0] == nil {
		return Version{}, fmt.Errorf("%w: empty chain", ErrCertificateMismatch)
	}
	for i := 0; i+1 < len(chain); i++ {
		if chain[i+1] == nil {
			return Version{}, fmt.Errorf("%w: nil certificate in chain", ErrCertificateMismatch)
		}
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return Version{}, fmt.Errorf("%w: chain certificate %d is not issued by certificate %d: %w", ErrCertificateMismatch, i, i+1, err)
		}
	}
	err := s.change(ctx, alias, func(sh pkcs11.SessionHandle, e *entry) error {
		mv := e.meta.version(version)
		if mv == nil {
			return fmt.Errorf("%w: %q version %d", ErrVersionNotFound, alias, version)
		}
		if mv.State == StateDestroyed {
			return fmt.Errorf("%w: %q version %d is destroyed", ErrInvalidState, alias, version)
		}
		pub := e.key.Versions[versionIndex(e.key, version)].Public
		type equaler interface{ Equal(x crypto.PublicKey) bool }
		if k, ok := pub.(equaler); !ok || !k.Equal(chain[0].PublicKey) {
			return fmt.Errorf("%w: %q version %d", ErrCertificateMismatch, alias, version)
		}
		// The order makes the change atomic as far as PKCS#11 allows
		// (docs/security.md "Importing a certificate"): the new
		// certificate objects go beside the old ones, then the metadata
		// that names them (metaVersion.Chain) replaces the old metadata,
		// which is the commit, and only then are the old objects removed.
		// Readers take the chain the metadata names, so a failure before
		// the commit leaves the old chain and metadata in force (the new
		// objects are removed, or ignored should that fail too), one
		// after it the new chain and metadata. Only the objects there
		// before ours are removed: one another replica writes meanwhile
		// is its import's, which commits after ours or removes them.
		old, err := versionCerts(s.p, sh, alias, version)
		if err != nil {
			return err
		}
		made, err := createChain(s.p, sh, alias, version, chain)
		if err != nil {
			destroyObjects(s.p, sh, made)
			return err
		}
		mv.Chain = chainSums(chain)
		if mv.State == StatePendingCertificate {
			mv.State = StateEnabled
			// A pending version has never been primary, whatever an
			// older release recorded (docs/security.md "Dual control").
			mv.NeverPrimary = true
		}
		if e.meta.Primary == 0 && mv.State == StateEnabled {
			e.meta.setPrimary(mv)
		}
		if err := writeMeta(s.p, sh, e); err != nil {
			if metaInForce(s.p, sh, alias, e.meta) {
				destroyObjects(s.p, sh, old)
			} else {
				destroyObjects(s.p, sh, made)
			}
			return err
		}
		destroyObjects(s.p, sh, old)
		return nil
	})
	if err != nil {
		return Version{}, err
	}
	return s.versionAfterChange(ctx, alias, version)
}

// SetPrimaryVersion makes an ENABLED version the one Sign and Timestamp use.
func (s *Store) SetPrimaryVersion(ctx context.Context, alias string, version int) (Key, error) {
	err := s.change(ctx, alias, func(sh pkcs11.SessionHandle, e *entry) error {
		mv, err := metaVersionOf(e, version)
		if err != nil {
			return err
		}
		if mv.State != StateEnabled {
			return fmt.Errorf("%w: %q version %d is %s", ErrKeyNotEnabled, alias, version, mv.State)
		}
		e.meta.setPrimary(mv)
		return writeMeta(s.p, sh, e)
	})
	if err != nil {
		return Key{}, err
	}
	e, err := s.reloadOwn(ctx, alias)
	if err != nil {
		return Key{}, err
	}
	return e.key, nil
}

// EnableKeyVersion turns a DISABLED version back on; it becomes primary when
// the alias has none.
func (s *Store) EnableKeyVersion(ctx context.Context, alias string, version int) (Version, error) {
	return s.setState(ctx, alias, version, StateEnabled)
}

// DisableKeyVersion stops an ENABLED version from signing or decrypting. The
// primary cannot be disabled: make another version primary first, so Sign
// never finds a key with no usable version by surprise.
func (s *Store) DisableKeyVersion(ctx context.Context, alias string, version int) (Version, error) {
	return s.setState(ctx, alias, version, StateDisabled)
}

// DestroyKeyVersion destroys the key objects (private and public key) of a
// DISABLED or never certified version; the primary and ENABLED versions are
// refused (ErrInvalidState). Its certificates and a DESTROYED record in the
// metadata stay on the token, so old signatures can still be attributed to
// it (Version.Public then comes from the certificate).
func (s *Store) DestroyKeyVersion(ctx context.Context, alias string, version int) (Version, error) {
	return s.setState(ctx, alias, version, StateDestroyed)
}

func (s *Store) setState(ctx context.Context, alias string, version int, to State) (Version, error) {
	err := s.change(ctx, alias, func(sh pkcs11.SessionHandle, e *entry) error {
		mv, err := metaVersionOf(e, version)
		if err != nil {
			return err
		}
		from := mv.State
		if from == to {
			return nil
		}
		bad := fmt.Errorf("%w: %q version %d: %s to %s", ErrInvalidState, alias, version, from, to)
		switch to {
		case StateEnabled:
			if from != StateDisabled {
				return bad
			}
			if e.meta.Primary == 0 {
				e.meta.setPrimary(mv)
			}
		case StateDisabled:
			if from != StateEnabled || e.meta.Primary == version {
				return bad
			}
		case StateDestroyed:
			if e.meta.Primary == version || (from != StateDisabled && from != StatePendingCertificate) {
				return bad
			}
			// Record the state first: a crash between the two steps then
			// leaves a DESTROYED version with a key nobody will use, never
			// a usable-looking version with no key.
			mv.State = to
			if err := writeMeta(s.p, sh, e); err != nil {
				return err
			}
			// Private key first: once it is gone nothing can sign or
			// decrypt with this version, whatever happens next.
			for _, hs := range []map[int]pkcs11.ObjectHandle{e.priv, e.pub} {
				if h, ok := hs[version]; ok {
					if err := s.p.DestroyObject(sh, h); err != nil {
						return p11Error("C_DestroyObject", err)
					}
				}
			}
			return nil
		}
		mv.State = to
		return writeMeta(s.p, sh, e)
	})
	if err != nil {
		return Version{}, err
	}
	return s.versionAfterChange(ctx, alias, version)
}

// change runs one lifecycle change on a fresh read of the alias.
func (s *Store) change(ctx context.Context, alias string, fn func(sh pkcs11.SessionHandle, e *entry) error) error {
	if err := checkAlias(alias); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.cache.invalidate(alias)
	attempt := 0
	return s.retryRace(alias, func() error {
		attempt++
		return s.withSession(context.WithoutCancel(ctx), func(sh pkcs11.SessionHandle) error {
			e, err := loadAlias(s.p, sh, alias)
			if errors.Is(err, errUnsettled) && attempt < maxChangeAttempts {
				return errLostRace
			}
			if err != nil {
				return err
			}
			if e.tie {
				// Two writers are between their create and destroy. Wait
				// for the race to settle; a tie that outlasts the retries
				// was left by a writer that died racing: settle it the
				// way readers read it (pickMeta).
				if attempt < maxChangeAttempts {
					return errLostRace
				}
				s.log.Warn("key metadata: removing a stale object of a concurrent change", "alias", alias, "generation", e.meta.Generation)
			}
			err = fn(sh, e)
			if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) && attempt < maxChangeAttempts {
				// An object this change read or had just made was destroyed
				// under it: another replica's change of the same alias (the
				// winner removes a loser's objects). That is a lost race, not
				// a token failure (docs/security.md "Replicas changing one key").
				// fn removed the objects it made (ImportCertificate its
				// certificate objects too, as its metadata was not
				// committed), and the retry writes them again.
				return errLostRace
			}
			return err
		})
	})
}

// maxChangeAttempts bounds the tries of one lifecycle change that keeps
// losing races with other replicas, or waits for an alias to settle (about
// two seconds in all: longer than the last nudge).
const maxChangeAttempts = 20

// errLostRace: another process changed the alias between our read and our
// write; what we wrote is removed again and the change runs once more.
var errLostRace = errors.New("keystore: lost a race with another process")

// refreshIndex has the module look at the token's object list again right
// before we write to it. SoftHSM keeps an object index per process and
// re-reads it only when the token's generation counter moved since its
// last look; writing moves the counter past other processes' writes it has
// not looked at, which it then never sees. Looking right before writing
// leaves that window at one write's length; nudge closes it afterwards.
func refreshIndex(p p11, sh pkcs11.SessionHandle) {
	if p.FindObjectsInit(sh, []*pkcs11.Attribute{attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, nudgeApp)}) == nil {
		_ = p.FindObjectsFinal(sh)
	}
}

// nudgeApp labels the scratch object of nudge.
const nudgeApp = "pecet-nudge"

// nudgeDelays: after the last lifecycle change of this Store, nudge writes
// at each of these delays.
var nudgeDelays = [...]time.Duration{200 * time.Millisecond, 1500 * time.Millisecond}

// nudge writes and removes a scratch object a little after this Store's
// last lifecycle change (twice), so that another process sharing a SoftHSM
// token that wrote at the same moment as we did, and so missed our objects
// (refreshIndex), looks at the token again: SoftHSM re-reads its index only
// when another process wrote since its own last write. On HSMs without
// per-process indexes it costs a few object writes per change.
func (s *Store) nudge() {
	s.nudgeMu.Lock()
	defer s.nudgeMu.Unlock()
	if s.nudgeStopped {
		return
	}
	for i, d := range nudgeDelays {
		if s.nudgeTimers[i] == nil {
			s.nudgeTimers[i] = time.AfterFunc(d, s.nudgeNow)
		} else {
			s.nudgeTimers[i].Reset(d)
		}
	}
}

// nudgeNow writes on the login session, not a pooled one: the pool is the
// callers' (and its statistics theirs). It holds nudgeMu, so that Close
// waits for it.
func (s *Store) nudgeNow() {
	s.nudgeMu.Lock()
	defer s.nudgeMu.Unlock()
	if s.nudgeStopped || s.health.err() != nil || !s.mod.gate.TryRLock() {
		return
	}
	defer s.mod.gate.RUnlock()
	if s.gen.Load() != s.mod.gen.Load() {
		return
	}
	s.loginMu.Lock()
	defer s.loginMu.Unlock()
	refreshIndex(s.p, s.login)
	h, err := s.p.CreateObject(s.login, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		attr(pkcs11.CKA_TOKEN, true),
		attr(pkcs11.CKA_PRIVATE, true),
		attr(pkcs11.CKA_APPLICATION, nudgeApp),
		attr(pkcs11.CKA_VALUE, []byte{0}),
	})
	if err == nil {
		_ = s.p.DestroyObject(s.login, h)
	}
}

// retryRace runs one change until it does not lose a race, waiting a
// random, growing pause between tries so that racing replicas fall apart;
// after maxChangeAttempts it gives up with ErrConflict. Each lost race is
// logged (the server audits the final outcome).
func (s *Store) retryRace(alias string, try func() error) error {
	defer s.nudge()
	for attempt := 1; ; attempt++ {
		err := try()
		if !errors.Is(err, errLostRace) {
			return err
		}
		s.cache.invalidate(alias)
		s.log.Warn("key change lost a race with another replica", "alias", alias, "attempt", attempt)
		if attempt >= maxChangeAttempts {
			return fmt.Errorf("%w: %q: gave up after %d tries", ErrConflict, alias, attempt)
		}
		//nolint:gosec // the jitter of a retry after a lost race, not a secret
		time.Sleep(min(time.Duration(attempt)*10*time.Millisecond, 100*time.Millisecond) + rand.N(20*time.Millisecond))
	}
}

// newNonce is the random nonce of one metadata write.
func newNonce() string {
	b := make([]byte, 8)
	_, _ = cryptorand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// versionAfterChange rereads the alias and returns one version of it.
func (s *Store) versionAfterChange(ctx context.Context, alias string, version int) (Version, error) {
	e, err := s.reloadOwn(ctx, alias)
	if err != nil {
		return Version{}, err
	}
	i := versionIndex(e.key, version)
	if i < 0 {
		return Version{}, fmt.Errorf("%w: %q version %d", ErrVersionNotFound, alias, version)
	}
	return e.key.Versions[i], nil
}

func versionIndex(k Key, version int) int {
	for i, v := range k.Versions {
		if v.Version == version {
			return i
		}
	}
	return -1
}

func metaVersionOf(e *entry, version int) (*metaVersion, error) {
	if mv := e.meta.version(version); mv != nil {
		return mv, nil
	}
	return nil, fmt.Errorf("%w: %q version %d", ErrVersionNotFound, e.key.Alias, version)
}

// now is the creation time recorded in metadata: UTC, whole seconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// generate makes one key pair for a version. The private key is a token
// object, sensitive and never extractable; it may only do what its purpose
// needs (CKA_SIGN or CKA_DECRYPT, never both, never unwrap or derive).
func generate(p p11, sh pkcs11.SessionHandle, alias string, version int, purpose Purpose, a Algorithm) (pub, priv pkcs11.ObjectHandle, err error) {
	decrypt := purpose == PurposeDecrypt
	pubT, privT := keyTemplates(alias, version, purpose)
	var mech uint
	if bits := rsaBits(a); bits > 0 {
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pubT = append(pubT,
			attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			attr(pkcs11.CKA_MODULUS_BITS, bits),
			attr(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
			attr(pkcs11.CKA_ENCRYPT, decrypt))
		privT = append(privT, attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA))
	} else {
		params, err := curveParams(a)
		if err != nil {
			return 0, 0, err
		}
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		pubT = append(pubT, attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC), attr(pkcs11.CKA_EC_PARAMS, params))
		privT = append(privT, attr(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC))
	}
	for try := 1; ; try++ {
		pub, priv, err = p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pubT, privT)
		// SoftHSM fails a key generation now and then while another
		// process writes the same token (CKR_GENERAL_ERROR, even
		// CKR_TEMPLATE_INCONSISTENT for a template it takes otherwise);
		// the same call then succeeds.
		if err == nil || try == 3 || !rvIs(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED, pkcs11.CKR_TEMPLATE_INCONSISTENT) {
			break
		}
		refreshIndex(p, sh)
	}
	if err != nil {
		return 0, 0, p11Error("C_GenerateKeyPair", err)
	}
	return pub, priv, nil
}

// keyTemplates are the attributes of every key pair of a version, generated
// (generate) or imported (ImportKey), before the key type's own: token
// objects labelled alias and identified by the version, the private key
// sensitive, never extractable, and able to do only what purpose needs.
func keyTemplates(alias string, version int, purpose Purpose) (pubT, privT []*pkcs11.Attribute) {
	sign := purpose == PurposeSign || purpose == PurposeTimestamp || purpose == PurposeAudit
	decrypt := purpose == PurposeDecrypt
	id := versionID(version)
	pubT = []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		attr(pkcs11.CKA_TOKEN, true),
		attr(pkcs11.CKA_PRIVATE, false),
		attr(pkcs11.CKA_LABEL, alias),
		attr(pkcs11.CKA_ID, id),
		attr(pkcs11.CKA_VERIFY, sign),
		attr(pkcs11.CKA_WRAP, false),
	}
	privT = []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		attr(pkcs11.CKA_TOKEN, true),
		attr(pkcs11.CKA_PRIVATE, true),
		attr(pkcs11.CKA_SENSITIVE, true),
		attr(pkcs11.CKA_EXTRACTABLE, false),
		attr(pkcs11.CKA_LABEL, alias),
		attr(pkcs11.CKA_ID, id),
		attr(pkcs11.CKA_SIGN, sign),
		attr(pkcs11.CKA_DECRYPT, decrypt),
		attr(pkcs11.CKA_UNWRAP, false),
		attr(pkcs11.CKA_DERIVE, false),
	}
	return pubT, privT
}

// createMeta makes the alias's metadata object. It is private (readable
// only after login) so that the alias list is not public on the token.
func createMeta(p p11, sh pkcs11.SessionHandle, alias string, m *meta) (pkcs11.ObjectHandle, error) {
	b, err := m.marshal()
	if err != nil {
		return 0, err
	}
	tmpl := []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
		attr(pkcs11.CKA_TOKEN, true),
		attr(pkcs11.CKA_PRIVATE, true),
		attr(pkcs11.CKA_APPLICATION, appName),
		attr(pkcs11.CKA_LABEL, alias),
		attr(pkcs11.CKA_VALUE, b),
	}
	var h pkcs11.ObjectHandle
	for try := 1; ; try++ {
		h, err = p.CreateObject(sh, tmpl)
		// As with key generation (generate): SoftHSM fails a create now
		// and then while another process writes the same token, and the
		// same call then succeeds. Should a failed call have written the
		// object after all, the duplicate carries the same generation and
		// nonce, which readers and the next change settle (pickMeta).
		if err == nil || try == 3 || !rvIs(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_FUNCTION_FAILED) {
			break
		}
		refreshIndex(p, sh)
	}
	return h, p11Error("C_CreateObject(metadata)", err)
}

// writeMeta replaces the alias's metadata object by one with the next
// generation: create first, then destroy the one read, so that a failure in
// between leaves the old or the new state readable, never neither.
//
// The destroy is the commit. When another process destroyed the old object
// first, it won, and ours is removed again (errLostRace). The winner removes
// older generations (leftovers of a writer that died between the two
// steps). Should two overlapping destroys both succeed (a token without
// exclusive destroy), two objects of one generation remain: readers pick
// the smaller nonce (pickMeta), and the next change waits for the tie to
// clear, then settles it the same way (change).
func writeMeta(p p11, sh pkcs11.SessionHandle, e *entry) error {
	e.meta.Generation++
	e.meta.Nonce = newNonce()
	refreshIndex(p, sh)
	h, err := createMeta(p, sh, e.key.Alias, e.meta)
	if err != nil {
		return err
	}
	refreshIndex(p, sh)
	if err := p.DestroyObject(sh, e.data); err != nil {
		_ = p.DestroyObject(sh, h)
		metas, ferr := findObjects(p, sh, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_DATA), attr(pkcs11.CKA_APPLICATION, appName), attr(pkcs11.CKA_LABEL, e.key.Alias)})
		if ferr == nil && !slices.Contains(metas, e.data) {
			return errLostRace
		}
		return p11Error("C_DestroyObject(metadata)", err)
	}
	e.data = h
	metas, err := readMetas(p, sh, e.key.Alias)
	if err != nil {
		return nil // ours is written and the old one gone: the change is made
	}
	for _, mo := range metas {
		if mo.m.Generation < e.meta.Generation {
			_ = p.DestroyObject(sh, mo.h) // gone already: harmless
		}
	}
	return nil
}

// createChain writes a version's chain as certificate objects beside any
// it has (the leaf under CKA_ID "v", issuer n under "v/n") and returns the
// handles it made, also those made before a failure.
func createChain(p p11, sh pkcs11.SessionHandle, alias string, version int, chain []*x509.Certificate) ([]pkcs11.ObjectHandle, error) {
	var made []pkcs11.ObjectHandle
	for n, c := range chain {
		id, cat := versionID(version), certCategoryTokenUser
		if n > 0 {
			id, cat = chainID(version, n), certCategoryAuthority
		}
		serial, err := asn1.Marshal(c.SerialNumber)
		if err != nil {
			return made, errors.New("keystore: certificate serial number cannot be encoded")
		}
		h, err := p.CreateObject(sh, []*pkcs11.Attribute{
			attr(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
			attr(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
			attr(pkcs11.CKA_CERTIFICATE_CATEGORY, cat),
			attr(pkcs11.CKA_TOKEN, true),
			// Private: a session without login can neither see nor
			// replace it (docs/security.md "Certificates on the token").
			attr(pkcs11.CKA_PRIVATE, true),
			attr(pkcs11.CKA_LABEL, alias),
			attr(pkcs11.CKA_ID, id),
			attr(pkcs11.CKA_SUBJECT, c.RawSubject),
			attr(pkcs11.CKA_ISSUER, c.RawIssuer),
			attr(pkcs11.CKA_SERIAL_NUMBER, serial),
			attr(pkcs11.CKA_VALUE, c.Raw),
		})
		if err != nil {
			return made, p11Error("C_CreateObject(certificate)", err)
		}
		made = append(made, h)
	}
	return made, nil
}

// chainSums are the SHA-256 of a chain's certificates (metaVersion.Chain).
func chainSums(chain []*x509.Certificate) []string {
	sums := make([]string, len(chain))
	for i, c := range chain {
		sums[i] = certSum(c)
	}
	return sums
}

// destroyObjects removes certificate objects no metadata names (what a
// failed import made, or the chain a committed one replaced), as far as
// the token lets it: what stays is ignored by readers, and the next import
// of the version removes it (versionCerts).
func destroyObjects(p p11, sh pkcs11.SessionHandle, hs []pkcs11.ObjectHandle) {
	for _, h := range hs {
		_ = p.DestroyObject(sh, h)
	}
}

// metaInForce says whether the metadata object m (its generation and
// nonce) is the one readers pick after a writeMeta that failed: its commit
// may have happened all the same (the old object destroyed, the error
// after it), and then the objects it names must stay. When the token
// cannot be read, it is taken to be in force: objects kept beside an older
// metadata are ignored, while objects removed under a newer one would
// leave the version without its certificate.
func metaInForce(p p11, sh pkcs11.SessionHandle, alias string, m *meta) bool {
	metas, err := readMetas(p, sh, alias)
	if err != nil || len(metas) == 0 {
		return true
	}
	cur, _ := pickMeta(metas)
	return cur.m.Generation == m.Generation && cur.m.Nonce == m.Nonce
}

// versionCerts lists a version's certificate objects: its chain, and what
// failed imports left beside it (named by no metadata).
func versionCerts(p p11, sh pkcs11.SessionHandle, alias string, version int) ([]pkcs11.ObjectHandle, error) {
	hs, err := findObjects(p, sh, []*pkcs11.Attribute{
		attr(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE), attr(pkcs11.CKA_LABEL, alias)})
	if err != nil {
		return nil, err
	}
	var out []pkcs11.ObjectHandle
	for _, h := range hs {
		id, err := getAttrs(p, sh, h, pkcs11.CKA_ID)
		if rvIs(err, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
			continue // removed by another process meanwhile
		}
		if err != nil {
			return nil, err
		}
		if v, _, ok := parseCertID(string(id[0])); ok && v == version {
			out = append(out, h)
		}
	}
	return out, nil
}
