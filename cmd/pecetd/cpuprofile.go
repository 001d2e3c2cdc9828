package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startCPUProfile writes a CPU profile of the whole run to path (pecetd
// --cpuprofile; `go tool pprof pecetd FILE` reads it); stop ends it and
// closes the file, at shutdown or before an error exit. For measuring
// (docs/performance.md "Where a call's time goes"), not for production: the
// profiler samples every thread 100 times a second.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
