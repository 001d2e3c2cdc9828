package keystore

import (
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

// entry is one alias as read from the token, with the object handles the
// hot path needs so that Signer does no C_FindObjects while it is fresh.
type entry struct {
	key    Key
	meta   *meta
	data   pkcs11.ObjectHandle         // the metadata object
	priv   map[int]pkcs11.ObjectHandle // by version; absent once destroyed
	pub    map[int]pkcs11.ObjectHandle
	readAt time.Time
}

// cache holds entries for ttl. It is trusted only that long because other
// processes sharing the token may rotate or disable keys; a miss always goes
// to the token, so a key another process created is found at once.
type cache struct {
	mu sync.RWMutex
	m  map[string]*entry
}

func (c *cache) fresh(alias string, ttl time.Duration) *entry {
	c.mu.RLock()
	e := c.m[alias]
	c.mu.RUnlock()
	if e == nil || time.Since(e.readAt) >= ttl {
		return nil
	}
	return e
}

func (c *cache) put(alias string, e *entry) {
	c.mu.Lock()
	c.m[alias] = e
	c.mu.Unlock()
}

func (c *cache) drop(alias string) {
	c.mu.Lock()
	delete(c.m, alias)
	c.mu.Unlock()
}
