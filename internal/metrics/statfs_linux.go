package metrics

import "syscall"

// freeBytes is what an unprivileged process may still write on dir's file
// system; -1 when statfs fails.
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
