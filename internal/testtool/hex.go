package testtool

import (
	"encoding/hex"
	"strings"
	"testing"
)

// Unhex decodes hex written with spaces between the bytes ("30 80 00 00"),
// the form the BER tables of the tests use, and fails the test on bad hex.
func Unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
