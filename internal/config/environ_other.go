//go:build !linux

package config

// scrubEnviron: outside Linux there is no /proc/self/environ to scrub;
// os.Unsetenv is all there is.
func scrubEnviron(string) {}
