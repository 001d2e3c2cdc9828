package keystore

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// A PKCS#11 module is process-global: C_Initialize and C_Finalize act on the
// whole library, and the user login belongs to the application (the process),
// not to one session. So every Store and InitToken in the process that names
// the same library shares one loaded module, counted here; C_Finalize runs
// only when the last user releases it. This registry is the package's only
// mutable package-level state, and it has to be: it mirrors state the C
// library already keeps per process.
var registry = struct {
	sync.Mutex
	mods map[string]*module
}{mods: map[string]*module{}}

// module is one loaded, initialised PKCS#11 library.
type module struct {
	key  string // resolved path: two symlinks to one file are one module
	ctx  *pkcs11.Ctx
	refs int // guarded by registry

	// initMu serialises InitToken, and Open's slot scan with it: two
	// callers must not pick the same free slot (a second C_InitToken on it
	// would fail or wipe the first token), and SoftHSM aborts when
	// C_GetSlotList and C_InitToken update its slot table at once.
	initMu sync.Mutex

	// logins counts the Stores logged in per slot. C_Logout is per
	// application, so only the last Store on a token may log out.
	loginMu sync.Mutex
	logins  map[uint]int

	// gate keeps C_Finalize away from calls in flight: every call a Store
	// makes on the module holds it for reading, and re-initialising the
	// module (after the token went away) holds it for writing. Calling
	// C_Finalize while another thread is inside the library is undefined
	// behaviour in PKCS#11 v2.40 (section 5.4).
	gate sync.RWMutex
	// gen counts re-initialisations. Sessions and object handles belong
	// to one generation: after C_Finalize their numbers may be handed out
	// again for other objects, so a Store never uses a handle of an older
	// generation. Written only with gate held for writing.
	gen atomic.Uint64
}

// reinit finalises and initialises the library again, unless another Store
// already did since generation seen; either way every session and object
// handle of the older generation is gone. The caller holds gate for writing.
func (m *module) reinit(seen uint64) error {
	if m.gen.Load() != seen {
		return nil
	}
	if err := m.ctx.Finalize(); err != nil && !rvIs(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		return fmt.Errorf("%w: C_Finalize: %w", ErrTokenUnavailable, err)
	}
	if err := m.ctx.Initialize(); err != nil && !rvIs(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		// Left finalised: the next attempt finalises (a no-op) and tries
		// again; every other Store sees CKR_CRYPTOKI_NOT_INITIALIZED meanwhile.
		return fmt.Errorf("%w: C_Initialize: %w", ErrTokenUnavailable, err)
	}
	m.gen.Add(1)
	return nil
}

// acquireModule loads and initialises the library at path, or returns the
// already loaded one with one more reference.
func acquireModule(path string) (*module, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no module path configured", ErrModule)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}
	key, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrModule, err)
	}

	registry.Lock()
	defer registry.Unlock()
	if m, ok := registry.mods[key]; ok {
		m.refs++
		return m, nil
	}
	ctx := pkcs11.New(key)
	if ctx == nil {
		return nil, fmt.Errorf("%w: cannot load %s", ErrModule, key)
	}
	// Another library in the process (crypto11, a second binding) may have
	// initialised it already; for us that is as good as our own C_Initialize.
	if err := ctx.Initialize(); err != nil && !rvIs(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("%w: C_Initialize %s: %w", ErrModule, key, err)
	}
	m := &module{key: key, ctx: ctx, refs: 1, logins: map[uint]int{}}
	registry.mods[key] = m
	return m, nil
}

// release drops one reference and finalises the library after the last one.
func (m *module) release() error {
	registry.Lock()
	defer registry.Unlock()
	m.refs--
	if m.refs > 0 {
		return nil
	}
	delete(registry.mods, m.key)
	err := m.ctx.Finalize()
	m.ctx.Destroy()
	if err != nil && !rvIs(err, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED) {
		return fmt.Errorf("keystore: C_Finalize: %w", err)
	}
	return nil
}

// addLogin records one more Store logged in on slot.
func (m *module) addLogin(slot uint) {
	m.loginMu.Lock()
	m.logins[slot]++
	m.loginMu.Unlock()
}

// moveLogin moves one Store's login from slot id from to id to: SoftHSM
// numbers its slots anew at every C_Initialize.
func (m *module) moveLogin(from, to uint) {
	m.loginMu.Lock()
	defer m.loginMu.Unlock()
	if m.logins[from]--; m.logins[from] <= 0 {
		delete(m.logins, from)
	}
	m.logins[to]++
}

// dropLogin records one Store fewer and reports whether it was the last.
func (m *module) dropLogin(slot uint) (last bool) {
	m.loginMu.Lock()
	defer m.loginMu.Unlock()
	m.logins[slot]--
	if m.logins[slot] <= 0 {
		delete(m.logins, slot)
		return true
	}
	return false
}
