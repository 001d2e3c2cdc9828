package metrics

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAuditDisk: the gauges count the audit file and its rotated copies,
// nothing else in the folder, and the file system's free space.
func TestAuditDisk(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"audit.log": 100, "audit.log.1": 1000, "audit.log.12": 10, "audit.log.bak": 5000, "other.log": 7000} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := New(func() (int, int) { return 0, 0 })
	m.AuditDisk(filepath.Join(dir, "audit.log"))
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 1 {
			got[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if v, ok := got["pecet_audit_files_bytes"]; !ok || v != 1110 {
		t.Errorf("pecet_audit_files_bytes = %v (%v), want 1110 (audit.log, .1 and .12)", v, ok)
	}
	if v, ok := got["pecet_audit_fs_free_bytes"]; !ok || v <= 0 {
		t.Errorf("pecet_audit_fs_free_bytes = %v (%v)", v, ok)
	}
}
