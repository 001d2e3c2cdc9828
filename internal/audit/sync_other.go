//go:build !linux

package audit

import "os"

// dataSync is fsync where fdatasync(2) is not offered.
func dataSync(f *os.File) error { return f.Sync() }
