package config

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// scrubEnviron overwrites every NAME=value entry of the process's original
// environment block with NUL bytes. os.Unsetenv changes only Go's copy (and
// the C library's), while /proc/self/environ reads the block the kernel
// placed on the stack at exec, from env_start to env_end in /proc/self/stat
// (fields 50 and 51, Linux 3.5+); the process may write its own memory
// through /proc/self/mem. Best effort: a kernel that forbids writing
// /proc/self/mem (proc_mem.force_override=never) leaves the block as it is.
func scrubEnviron(name string) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3
	if len(f) < 49 {
		return
	}
	start, err1 := strconv.ParseInt(f[47], 10, 64)
	end, err2 := strconv.ParseInt(f[48], 10, 64)
	if err1 != nil || err2 != nil || start <= 0 || end <= start || end-start > 1<<24 {
		return
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, start); err != nil {
		return
	}
	prefix := []byte(name + "=")
	off := 0
	for _, entry := range bytes.Split(block, []byte{0}) {
		if bytes.HasPrefix(entry, prefix) {
			_, _ = mem.WriteAt(make([]byte, len(entry)), start+int64(off))
		}
		off += len(entry) + 1
	}
	clear(block)
}
