package signer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pecet-hsm/pecet/policy"
)

// countingTimestamps is a TimestampVerifier that only counts its calls; a
// real one verifies a whole CMS SignedData and a chain per token.
type countingTimestamps struct{ calls *int }

func (c countingTimestamps) VerifyTimestamp(token, sigValue []byte) (time.Time, policy.Verdict, error) {
	*c.calls++
	return time.Now(), policy.Verdict{Status: policy.Valid}, nil
}

// TestTimestampCountBound: the signature-time-stamps of a signer are
// counted while parsing, over all the attributes that carry them, and more
// than Limits.MaxTimestamps is ErrTooLarge before any is verified
// (docs/reliability.md, "Limits"). Before, 64
// attributes of 64 tokens each passed the attribute bounds and were
// verified one by one: 4096 CMS verifications for one request.
func TestTimestampCountBound(t *testing.T) {
	f := newSigner(t, p256)
	content := []byte("data")
	token := []byte{0x30, 0x03, 0x02, 0x01, 0x01} // stands for a token: never looked at
	tsOID := oidName(OIDSignatureTimeStampToken).ASN1()
	layout := func(attrs, values int) func([]byte) ([]Attribute, error) {
		return func([]byte) ([]Attribute, error) {
			out := make([]Attribute, attrs)
			for i := range out {
				out[i] = Attribute{Type: tsOID}
				for range values {
					out[i].Values = append(out[i].Values, token)
				}
			}
			return out, nil
		}
	}
	def := DefaultLimits().MaxTimestamps
	tests := []struct {
		name          string
		attrs, values int
		lim           Limits
		want          error // nil: verified, every token once
	}{
		{"one", 1, 1, Limits{}, nil},
		{"the default bound, as values", 1, def, Limits{}, nil},
		{"the default bound, as attributes", def, 1, Limits{}, nil},
		{"one over, as values", 1, def + 1, Limits{}, ErrTooLarge},
		{"one over, as attributes", def + 1, 1, Limits{}, ErrTooLarge},
		{"64 attributes of 64", 64, 64, Limits{}, ErrTooLarge},
		{"10,000 values", 1, 10000, Limits{MaxAttributes: 20000}, ErrTooLarge},
		{"10,000 attributes", 10000, 1, Limits{MaxAttributes: 20000}, ErrTooLarge},
		{"none allowed", 1, 1, Limits{MaxTimestamps: -1}, ErrTooLarge},
		{"raised", 3, 4, Limits{MaxTimestamps: 12}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			der, err := Sign(content, f.key, f.chain(), Options{UnsignedAttributes: layout(tc.attrs, tc.values)})
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			start := time.Now()
			v, err := Verify(der, VerifyOptions{Content: content, Validator: f.ca.validator(), Limits: tc.lim,
				TimestampVerifier: countingTimestamps{&calls}})
			took := time.Since(start)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "signature time-stamps") {
					t.Fatalf("got %v (%s), want %v", err, v.Status, tc.want)
				}
				if calls != 0 {
					t.Fatalf("%d tokens verified before the refusal", calls)
				}
				if took > 500*time.Millisecond {
					t.Errorf("refusal took %v", took)
				}
				return
			}
			if err != nil || v.Status != policy.Valid || calls != tc.attrs*tc.values {
				t.Fatalf("%v %s %v, %d calls", err, v.Status, v.Reasons, calls)
			}
		})
	}
}
