package ers

import (
	"crypto"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/internal/testtool"
	"github.com/pecet-hsm/pecet/tsa"
)

// outsideRecords are evidence records made by other implementations, read
// from $PECET_VECTORS/ers/ (docs/archive.md "Outside material": the test
// data bc-java's ERS tests use, in the same folders as there, under
// 20170316_Testdaten/). Each is parsed and verified for its document down
// to each token's imprint; the tokens' TSAs are not judged (their
// certificates are not anchored here), so the judge only parses them. doc
// is the document beside the record, or docHex its SHA-256 hash (the BSI
// TR-ESOR records cover two documents that are not included; these are
// the hashes bc-java's tests check). firstChain verifies only the first
// chain (the second is under SHA-384 of a document that is not included).
// want is nil for a record that must verify, else the sentinel.
var outsideRecords = []struct {
	file, doc, docHex string
	firstChain        bool
	want              error
}{
	{file: testool + "1Chain1ATS/BIN_ER.ers", doc: testool + "1Chain1ATS/BIN.bin"},
	{file: testool + "1Chain2ATS/BIN_ER.ers", doc: testool + "1Chain2ATS/BIN.bin"},
	{file: testool + "2Chains3ATS/BIN_ER.ers", doc: testool + "2Chains3ATS/BIN.bin"},
	{file: testool + "1Chain2ATS/BIN_ER.ers", doc: testool + "2Chains3ATS/test.txt", want: ErrNotCovered},
	{file: esor + "ER_OK_INIT.ers", docHex: esorDoc},
	{file: esor + "ER_OK_INIT.ers", docHex: esorDoc2},
	{file: esor + "ER_OK_CHAIN.ers", docHex: esorDoc},
	{file: esor + "ER_OK_SEQ.ers", docHex: esorDoc, firstChain: true},
	{file: esor + "ER_NOK_INIT.ers", docHex: esorDoc, want: ErrNotCovered},
	{file: esor + "ER_NOK_CHAIN.ers", docHex: esorDoc, want: ErrRenewal},
	// The break is in the second chain, which needs the document's SHA-384
	// hash: only the refusal to go on without it is checked.
	{file: esor + "ER_NOK_SEQ.ers", docHex: esorDoc, want: ErrHash},
}

const (
	testool  = "20170316_Testdaten/Testdaten_ERS-Testool/rfc4998/"
	esor     = "20170316_Testdaten/BSI TR-ESOR C.2 TestData/"
	esorDoc  = "9ce2d7d350f9418407439f0ca11dcc12ab9f7cdb15f9ecc5eca935482602b872"
	esorDoc2 = "eecc4d3352c0e965fd88795edfd1a60c5ac09b3c1100c052ebb6ae0bd3432b26"
)

func TestOutsideRecords(t *testing.T) {
	dir, ok := testtool.LookupVectors("ers")
	if !ok {
		t.Skip("no $PECET_VECTORS/ers/ (docs/archive.md \"Outside material\" says which files)")
	}
	for _, tc := range outsideRecords {
		t.Run(filepath.Base(filepath.Dir(tc.file))+"/"+filepath.Base(tc.file)+"/"+filepath.Base(tc.doc)+tc.docHex[:min(8, len(tc.docHex))], func(t *testing.T) {
			rec, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Skipf("not in the vectors: %v", err)
			}
			r, err := Parse(rec)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.firstChain {
				r.Chains = r.Chains[:1]
				if rec, err = r.Marshal(); err != nil {
					t.Fatal(err)
				}
			}
			hs, err := r.ChainHashes()
			if err != nil {
				t.Fatal(err)
			}
			docs := map[crypto.Hash][]byte{}
			if tc.docHex != "" {
				docs[crypto.SHA256], _ = hex.DecodeString(tc.docHex)
			} else {
				doc, err := os.ReadFile(filepath.Join(dir, tc.doc))
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hs {
					d := h.New()
					d.Write(doc)
					docs[h] = d.Sum(nil)
				}
			}
			parseOnly := func(tok []byte, _ time.Time) (*tsa.TSTInfo, error) { return tsa.ParseToken(tok) }
			res, err := VerifyRecord(rec, docs, parseOnly, time.Time{})
			n := 0
			for _, c := range r.Chains {
				n += len(c)
			}
			t.Logf("%d chains, %d archive time-stamps, hashes %v: existed %v, %v", len(r.Chains), n, hs, res.Existed, err)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyRecord: %v, want %v", err, tc.want)
			}
		})
	}
}
