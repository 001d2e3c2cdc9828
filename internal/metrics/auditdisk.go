package metrics

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// AuditDisk adds two gauges on the audit log at file, read at each scrape:
// pecet_audit_files_bytes, the size of the file and its rotated copies
// (FILE.1, FILE.2, …), and pecet_audit_fs_free_bytes, what the file
// system holding it has free for pecetd. A full audit disk stops every key
// operation (the log fails closed), so both are worth an alert
// (docs/operations.md "Logs and the audit log"). In Kubernetes an
// emptyDir's sizeLimit is not visible to statfs: alert on the files' size
// against the limit there.
func (m *Metrics) AuditDisk(file string) {
	dir, base := filepath.Dir(file), filepath.Base(file)
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pecet_audit_files_bytes",
			Help: "Bytes in the audit log file and its rotated copies.",
		}, func() float64 { return float64(auditBytes(dir, base)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pecet_audit_fs_free_bytes",
			Help: "Bytes free for pecetd on the file system of the audit log (-1: unknown).",
		}, func() float64 { return float64(freeBytes(dir)) }),
	)
}

// auditBytes sums the sizes of base and base.N in dir.
func auditBytes(dir, base string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		name := e.Name()
		if name != base && !(strings.HasPrefix(name, base+".") && strings.Trim(name[len(base)+1:], "0123456789") == "") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}
