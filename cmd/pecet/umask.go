package main

import (
	"io/fs"
	"syscall"
)

// umask is the process's file mode creation mask, read once at start
// (syscall.Umask can only read it by setting it, so it is set back at
// once, before any goroutine creates files). Outputs written through a
// temporary file apply it themselves (stream.go).
var umask = func() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}()
