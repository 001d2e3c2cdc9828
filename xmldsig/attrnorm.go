package xmldsig

import "bytes"

// normalizeAttrWhitespace returns data with every literal tab, LF, CR and
// CRLF inside a quoted attribute value of a tag replaced by one space: the
// attribute-value normalisation of XML 1.0 section 3.3.3 (after the line-end
// handling of section 2.11), which encoding/xml does not do. It must happen
// on the raw bytes: once encoding/xml has decoded a value, a literal tab and
// the reference &#x9; are the same character, but only the literal one
// becomes a space. Comments, CDATA sections, processing instructions and
// character data are copied unchanged; so is everything after a directive
// (<!DOCTYPE …>), which Parse refuses anyway. One pass, and the output is
// never longer than data; data without such whitespace is returned as is.
func normalizeAttrWhitespace(data []byte) []byte {
	var out []byte // nil until the first change
	copied := 0    // data[:copied] is in out already
	i := 0
	for i < len(data) {
		lt := bytes.IndexByte(data[i:], '<')
		if lt < 0 {
			break
		}
		i += lt
		rest := data[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			i = skipPast(data, i+4, "-->")
			continue
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			i = skipPast(data, i+9, "]]>")
			continue
		case bytes.HasPrefix(rest, []byte("<?")):
			i = skipPast(data, i+2, "?>")
			continue
		case bytes.HasPrefix(rest, []byte("<!")):
			i = len(data) // a directive: Parse refuses it
			continue
		}
		// A start or end tag: walk to its '>' outside quotes.
		for i++; i < len(data) && data[i] != '>'; i++ {
			q := data[i]
			if q != '"' && q != '\'' {
				continue
			}
			for i++; i < len(data) && data[i] != q; i++ {
				c := data[i]
				if c != '\t' && c != '\n' && c != '\r' {
					continue
				}
				if out == nil {
					out = make([]byte, 0, len(data))
				}
				out = append(out, data[copied:i]...)
				out = append(out, ' ')
				if c == '\r' && i+1 < len(data) && data[i+1] == '\n' {
					i++ // CRLF is one line end (section 2.11), so one space
				}
				copied = i + 1
			}
			if i == len(data) {
				break // unterminated value: the decoder reports it
			}
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[copied:]...)
}

// skipPast returns the index just after the first end at or after from, or
// len(data) when there is none.
func skipPast(data []byte, from int, end string) int {
	if from > len(data) {
		return len(data)
	}
	k := bytes.Index(data[from:], []byte(end))
	if k < 0 {
		return len(data)
	}
	return from + k + len(end)
}
