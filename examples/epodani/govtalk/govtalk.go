// Package govtalk writes and reads the two envelopes of an e-podání filing
// (README.md "The e-podání example"): the GovTalk envelope (EnvelopeVersion 2.0; Class,
// Qualifier, Function) and, in its Body, the ČSSZ <Message version="1.1">
// with the base64 PKCS#7 signature of the data sentence in
// Header/Signature and the (gzipped, encrypted) sentence in Body.
//
// Parse reads untrusted bytes: the input is bounded by the caller, and
// encoding/xml is given a reader that refuses more than MaxBytes; the
// base64 fields are decoded only after the structure is known.
package govtalk

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxBytes bounds a filing Parse reads: a 20 MiB body in base64 plus the
// signature and the envelopes.
const MaxBytes = 32 << 20

// ErrFormat: the input is not a filing this package reads.
var ErrFormat = errors.New("govtalk: not a GovTalk filing with a ČSSZ message")

// Filing is what the client sends and the gateway receives.
type Filing struct {
	Class     string // CSSZ_PRIHL
	Qualifier string // request
	Function  string // submit
	// Signature is the detached CMS SignedData over the data sentence.
	Signature []byte
	// Body is the data sentence after ContentEncoding, then encryption.
	Body            []byte
	Encrypted       bool
	ContentEncoding string // gzip or raw
	Vendor          string
	VendorVersion   string
}

type xmlGovTalk struct {
	XMLName         xml.Name `xml:"http://www.govtalk.gov.uk/CM/envelope GovTalkMessage"`
	EnvelopeVersion string   `xml:"EnvelopeVersion"`
	Header          struct {
		MessageDetails struct {
			Class     string `xml:"Class"`
			Qualifier string `xml:"Qualifier"`
			Function  string `xml:"Function"`
		} `xml:"MessageDetails"`
	} `xml:"Header"`
	Body struct {
		Message *xmlMessage `xml:"Message"`
	} `xml:"Body"`
}

type xmlMessage struct {
	Version string `xml:"version,attr"`
	Header  struct {
		Signature string `xml:"Signature"`
		Vendor    struct {
			ProductName string `xml:"productname,attr"`
			Version     string `xml:"version,attr"`
		} `xml:"Vendor"`
	} `xml:"Header"`
	Body struct {
		Encrypted       string `xml:"encrypted,attr"`
		ContentEncoding string `xml:"contentEncoding,attr"`
		Value           string `xml:",chardata"`
	} `xml:"Body"`
}

// Marshal writes the filing as XML.
func Marshal(f Filing) ([]byte, error) {
	m := &xmlMessage{Version: "1.1"}
	m.Header.Signature = base64.StdEncoding.EncodeToString(f.Signature)
	m.Header.Vendor.ProductName, m.Header.Vendor.Version = f.Vendor, f.VendorVersion
	m.Body.Encrypted = "no"
	if f.Encrypted {
		m.Body.Encrypted = "yes"
	}
	m.Body.ContentEncoding = f.ContentEncoding
	m.Body.Value = base64.StdEncoding.EncodeToString(f.Body)
	g := xmlGovTalk{EnvelopeVersion: "2.0"}
	g.Header.MessageDetails.Class, g.Header.MessageDetails.Qualifier, g.Header.MessageDetails.Function = f.Class, f.Qualifier, f.Function
	g.Body.Message = m
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(g); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Parse reads a filing of at most MaxBytes.
func Parse(r io.Reader) (*Filing, error) {
	lr := &io.LimitedReader{R: r, N: MaxBytes + 1}
	var g xmlGovTalk
	dec := xml.NewDecoder(lr)
	if err := dec.Decode(&g); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxBytes)
		}
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxBytes)
	}
	if g.EnvelopeVersion != "2.0" || g.Body.Message == nil || g.Body.Message.Version != "1.1" {
		return nil, fmt.Errorf("%w: need EnvelopeVersion 2.0 and Message version 1.1", ErrFormat)
	}
	m := g.Body.Message
	f := &Filing{
		Class: g.Header.MessageDetails.Class, Qualifier: g.Header.MessageDetails.Qualifier, Function: g.Header.MessageDetails.Function,
		ContentEncoding: m.Body.ContentEncoding, Vendor: m.Header.Vendor.ProductName, VendorVersion: m.Header.Vendor.Version,
	}
	switch m.Body.Encrypted {
	case "yes":
		f.Encrypted = true
	case "no":
	default:
		return nil, fmt.Errorf("%w: Body encrypted must be yes or no", ErrFormat)
	}
	if f.ContentEncoding != "gzip" && f.ContentEncoding != "raw" {
		return nil, fmt.Errorf("%w: Body contentEncoding must be gzip or raw", ErrFormat)
	}
	var err error
	if f.Signature, err = decode64(m.Header.Signature); err != nil {
		return nil, fmt.Errorf("%w: Signature is not base64", ErrFormat)
	}
	if f.Body, err = decode64(m.Body.Value); err != nil {
		return nil, fmt.Errorf("%w: Body is not base64", ErrFormat)
	}
	return f, nil
}

// decode64 decodes base64 with line breaks and spaces, as filings come.
func decode64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

// CountEmployees counts the <employee> elements under <PRIHL>, reading at
// most max bytes, without keeping any of their (personal) content.
func CountEmployees(sentence []byte, max int) (int, error) {
	if len(sentence) > max {
		return 0, fmt.Errorf("%w: data sentence larger than %d bytes", ErrFormat, max)
	}
	dec := xml.NewDecoder(bytes.NewReader(sentence))
	depth, n, root := 0, 0, ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%w: data sentence: %w", ErrFormat, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				root = t.Name.Local
			}
			if depth == 2 && t.Name.Local == "employee" {
				n++
			}
		case xml.EndElement:
			depth--
		}
	}
	if root != "PRIHL" {
		return 0, fmt.Errorf("%w: data sentence root is not PRIHL", ErrFormat)
	}
	return n, nil
}
