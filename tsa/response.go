package tsa

import (
	"encoding/asn1"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// maxResponseBytes bounds a TimeStampResp or a token given to Verify:
// a token with a chain of a few certificates is a few KiB.
const maxResponseBytes = 1 << 20

// Response is a parsed TimeStampResp (RFC 3161 2.4.2).
type Response struct {
	Status     PKIStatus
	StatusText []string
	// Fail is the first failure bit set; FailNone when there is none.
	Fail FailureInfo
	// Token is the DER of the TimeStampToken; nil when absent.
	Token []byte
}

// encodeResponse writes a TimeStampResp.
func encodeResponse(st PKIStatus, fail FailureInfo, text string, token []byte) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // PKIStatusInfo
			b.AddASN1Int64(int64(st))
			if text != "" {
				if !utf8.ValidString(text) {
					text = "invalid text"
				}
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(text)) })
				})
			}
			if fail != FailNone {
				// DER named bit list: no trailing zero bits (X.690 11.2.2).
				n := int(fail)
				bits := make([]byte, n/8+1)
				bits[n/8] = 0x80 >> (n % 8)
				b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
					b.AddUint8(uint8(7 - n%8))
					b.AddBytes(bits)
				})
			}
		})
		if token != nil {
			b.AddBytes(token)
		}
	})
	out, err := b.Bytes()
	if err != nil {
		// Only an invalid builder state fails, and nothing here makes one.
		panic("tsa: encoding a TimeStampResp: " + err.Error())
	}
	return out
}

// RejectionResponse is the DER TimeStampResp for a rejection.
func RejectionResponse(r *Rejection) []byte {
	return encodeResponse(StatusRejection, r.Info, r.Text, nil)
}

// ParseResponse parses a DER TimeStampResp. A rejection is a Response
// with Status and Fail set, not an error.
func ParseResponse(der []byte) (*Response, error) {
	bad := func(what string) error { return fmt.Errorf("%w: TimeStampResp: %s", ErrMalformed, what) }
	if len(der) > maxResponseBytes {
		return nil, bad("larger than 1 MiB")
	}
	s := cryptobyte.String(der)
	var body, si cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) || !s.Empty() {
		return nil, bad("not one DER SEQUENCE")
	}
	if !body.ReadASN1(&si, cbasn1.SEQUENCE) {
		return nil, bad("status")
	}
	r := &Response{Fail: FailNone}
	var st int64
	if !si.ReadASN1Integer(&st) || st < 0 || st > 5 {
		return nil, bad("status value")
	}
	r.Status = PKIStatus(st)
	if si.PeekASN1Tag(cbasn1.SEQUENCE) {
		var texts cryptobyte.String
		si.ReadASN1(&texts, cbasn1.SEQUENCE)
		for !texts.Empty() {
			var t cryptobyte.String
			if !texts.ReadASN1(&t, cbasn1.UTF8String) || len(r.StatusText) >= 16 {
				return nil, bad("statusString")
			}
			r.StatusText = append(r.StatusText, string(t))
		}
	}
	if si.PeekASN1Tag(cbasn1.BIT_STRING) {
		var bs asn1.BitString
		if !si.ReadASN1BitString(&bs) {
			return nil, bad("failInfo")
		}
		for i := 0; i < bs.BitLength && i < 32; i++ {
			if bs.At(i) == 1 {
				r.Fail = FailureInfo(i)
				break
			}
		}
	}
	if !si.Empty() {
		return nil, bad("status info")
	}
	if !body.Empty() {
		var tok cryptobyte.String
		if !body.ReadASN1Element(&tok, cbasn1.SEQUENCE) || !body.Empty() {
			return nil, bad("timeStampToken")
		}
		r.Token = []byte(tok)
	}
	if (r.Status == StatusGranted || r.Status == StatusGrantedWithMods) != (r.Token != nil) {
		return nil, bad("a granted response must carry a token, and only a granted one")
	}
	return r, nil
}

// IsResponse reports whether der looks like a TimeStampResp rather than a
// bare token (ContentInfo): a response's first element is a SEQUENCE, a
// ContentInfo's an OBJECT IDENTIFIER.
func IsResponse(der []byte) bool {
	s := cryptobyte.String(der)
	var body cryptobyte.String
	return s.ReadASN1(&body, cbasn1.SEQUENCE) && body.PeekASN1Tag(cbasn1.SEQUENCE)
}
