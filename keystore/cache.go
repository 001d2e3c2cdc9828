package keystore

import (
	"context"
	"errors"
	"fmt"
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
	gen    uint64 // the module generation the handles belong to
	// tie: two metadata objects share the highest generation (two writers
	// racing, or one that died racing); writers wait for it to resolve.
	tie bool
}

// cache holds entries for ttl. It is trusted only that long because other
// processes sharing the token may rotate or disable keys; a miss always goes
// to the token, so a key another process created is found at once.
//
// When an entry expires under load, the many Signer calls that notice it at
// once share one token read (inflight) instead of each doing their own. An
// epoch per alias, bumped by every change this process makes, keeps a read
// that began before the change from caching the old state after it.
type cache struct {
	mu       sync.Mutex
	m        map[string]*entry
	inflight map[string]*read
	epoch    map[string]uint64
}

type read struct {
	done chan struct{}
	e    *entry
	err  error
}

func newCache() cache {
	return cache{m: map[string]*entry{}, inflight: map[string]*read{}, epoch: map[string]uint64{}}
}

func (c *cache) fresh(alias string, ttl time.Duration) *entry {
	c.mu.Lock()
	e := c.m[alias]
	c.mu.Unlock()
	if e == nil || time.Since(e.readAt) >= ttl {
		return nil
	}
	return e
}

// invalidate forgets alias and any read of it already under way.
func (c *cache) invalidate(alias string) {
	c.mu.Lock()
	delete(c.m, alias)
	delete(c.inflight, alias)
	c.epoch[alias]++
	c.mu.Unlock()
}

// load returns the alias as read by fn, sharing a read in flight unless
// shared is false (a caller that must see its own change). The result is
// cached unless the alias was invalidated while reading.
func (c *cache) load(ctx context.Context, alias string, shared bool, fn func() (*entry, error)) (*entry, error) {
	c.mu.Lock()
	if r, ok := c.inflight[alias]; ok && shared {
		c.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("keystore: %w", ctx.Err())
		}
		// The reader's own deadline is not ours: read again ourselves.
		if !errors.Is(r.err, context.Canceled) && !errors.Is(r.err, context.DeadlineExceeded) {
			return r.e, r.err
		}
		return c.load(ctx, alias, false, fn)
	}
	r := &read{done: make(chan struct{})}
	if shared {
		c.inflight[alias] = r
	}
	epoch := c.epoch[alias]
	c.mu.Unlock()

	r.e, r.err = fn()

	c.mu.Lock()
	if c.inflight[alias] == r {
		delete(c.inflight, alias)
	}
	if c.epoch[alias] == epoch {
		switch {
		case r.err == nil:
			c.m[alias] = r.e
		case isNotFound(r.err):
			delete(c.m, alias)
		}
	}
	c.mu.Unlock()
	close(r.done)
	return r.e, r.err
}

// clear forgets every alias and every read under way (the token came back:
// all handles changed).
func (c *cache) clear() {
	c.mu.Lock()
	for alias := range c.m {
		c.epoch[alias]++
	}
	for alias := range c.inflight {
		c.epoch[alias]++
	}
	clear(c.m)
	clear(c.inflight)
	c.mu.Unlock()
}

// put caches entries read outside load (ListKeys); an alias that could not
// be read (e.key.Err) is not cached.
func (c *cache) put(alias string, e *entry) {
	if e.key.Err != nil {
		return
	}
	c.mu.Lock()
	c.m[alias] = e
	c.mu.Unlock()
}
