package govtalk

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func sample() Filing {
	return Filing{Class: "CSSZ_PRIHL", Qualifier: "request", Function: "submit", Signature: []byte{1, 2, 3},
		Body: []byte("enveloped"), Encrypted: true, ContentEncoding: "gzip", Vendor: "pecet e-podání example", VendorVersion: "1.0"}
}

func TestRoundTrip(t *testing.T) {
	b, err := Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<Message version="1.1">`, `encrypted="yes"`, `contentEncoding="gzip"`, "<Class>CSSZ_PRIHL</Class>", "<EnvelopeVersion>2.0</EnvelopeVersion>"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %s in\n%s", want, b)
		}
	}
	f, err := Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s := sample()
	if f.Class != s.Class || !bytes.Equal(f.Body, s.Body) || !bytes.Equal(f.Signature, s.Signature) || !f.Encrypted || f.ContentEncoding != "gzip" {
		t.Fatalf("got %+v", f)
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := Marshal(sample())
	for name, in := range map[string]string{
		"not xml":        "hello",
		"other root":     "<x/>",
		"bad encrypted":  strings.Replace(string(good), `encrypted="yes"`, `encrypted="maybe"`, 1),
		"bad encoding":   strings.Replace(string(good), `contentEncoding="gzip"`, `contentEncoding="zip"`, 1),
		"bad base64":     strings.Replace(string(good), "ZW52ZWxvcGVk", "!!!", 1),
		"no message":     strings.Replace(string(good), "Message", "Massage", 2),
		"too large":      "<a>" + strings.Repeat(" ", MaxBytes) + "</a>",
		"wrong versions": strings.Replace(string(good), `version="1.1"`, `version="9"`, 1),
	} {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCountEmployees(t *testing.T) {
	n, err := CountEmployees([]byte(`<PRIHL><employee/><employee><x><employee/></x></employee></PRIHL>`), 1<<10)
	if err != nil || n != 2 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := CountEmployees([]byte(`<OTHER/>`), 1<<10); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
	if _, err := CountEmployees(make([]byte, 11), 10); !errors.Is(err, ErrFormat) {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	good, _ := Marshal(sample())
	f.Add(good)
	f.Add([]byte("<GovTalkMessage/>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Parse(bytes.NewReader(b)); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
		if _, err := CountEmployees(b, 1<<20); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
	})
}
