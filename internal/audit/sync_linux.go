package audit

import (
	"errors"
	"os"
	"syscall"
)

// dataSync is fdatasync(2): it writes the file's data and the metadata
// needed to read it back, which for an append includes the new file size
// (so an appended line is as durable as with fsync), and skips only what
// reading does not need (mtime). On ext4 that saves the inode's timestamp
// update in the journal commit.
func dataSync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
