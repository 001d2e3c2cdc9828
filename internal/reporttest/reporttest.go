// Package reporttest checks validation reports in tests: report.Check, and
// xmllint against the ETSI schema when the shared vectors have it. It is
// apart from testtool because it imports report, whose tests import testtool.
package reporttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/report"
)

// ValidationReportSchema is the path of the ETSI TS 119 102-2 schema
// (etsi-validation-report/1910202xmlSchema.xsd, namespace
// http://uri.etsi.org/19102/v1.2.1#) inside the shared vectors, and
// whether it is there. The folder also holds the schemas it imports
// (XMLDSig, XAdES 1.3.2, TS 119 612, xml.xsd) and a catalog.xml mapping
// their http:// schemaLocations to those files, as xmllint runs without
// network. The schema cannot be committed to this repository; until the
// folder exists the reports are checked by report.Check alone.
func ValidationReportSchema() (string, bool) {
	return testtool.LookupVectors("etsi-validation-report", "1910202xmlSchema.xsd")
}

// CheckValidationReport checks a report's structure with report.Check and,
// when the schema folder is at hand, validates it with `xmllint --schema`
// (no network: the folder's catalog.xml, if any, resolves the imports).
func CheckValidationReport(t testing.TB, data []byte) *report.ValidationReport {
	t.Helper()
	r, err := report.Check(data)
	if err != nil {
		t.Fatalf("validation report: %v\n%s", err, data)
	}
	xsd, ok := ValidationReportSchema()
	if !ok {
		return r
	}
	f := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	//nolint:gosec // a test helper: the schema and the report are files the test wrote
	cmd := exec.Command("xmllint", "--noout", "--nonet", "--schema", xsd, f)
	if cat := filepath.Join(filepath.Dir(xsd), "catalog.xml"); statOK(cat) {
		cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+cat)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmllint --schema %s: %v\n%s\n%s", xsd, err, out, data)
	}
	return r
}

func statOK(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
