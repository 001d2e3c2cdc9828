package ratelimit

import (
	"strings"
	"testing"
)

// FuzzAddrKey: any peer address string (net/http's RemoteAddr) gives a key
// without panicking, no longer than its input plus a prefix length, and the
// key of an IPv6 /64 is the key of its own prefix address.
func FuzzAddrKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1:80", "[2001:db8::1]:443", "[::ffff:10.0.0.1]:1", "[fe80::1%eth0]:5", "", ":", "[", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		k := AddrKey(addr)
		if len(k) > len(addr)+len("::/64") {
			t.Fatalf("AddrKey(%q) = %q: longer than its input", addr, k)
		}
		if strings.HasSuffix(k, "/64") && AddrKey(k[:len(k)-3]) != k {
			t.Fatalf("AddrKey(%q) = %q is not stable", addr, k)
		}
	})
}
