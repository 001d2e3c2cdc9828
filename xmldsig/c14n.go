package xmldsig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// A small XML tree and Exclusive XML Canonicalization 1.0 (without
// comments, https://www.w3.org/TR/xml-exc-c14n/), enough for the enveloped
// XMLDSig signatures of ETSI TS 119 612 trusted lists. The tree keeps the
// prefixes as written, which canonicalization needs and encoding/xml's
// namespace-resolving API loses.

// ErrMalformedXML is returned for XML the parser refuses.
var ErrMalformedXML = errors.New("xmldsig: malformed or disallowed XML")

// XML bounds: a trusted list has depth about 12 and tens of thousands of
// elements; the EU list of lists is smaller. Parse refuses a document
// beyond them.
const (
	MaxDepth    = 64
	MaxElements = 500000
)

// Node is an element of a parsed document, with its prefixes as written.
// The accessors are nil-safe: a missing element reads as empty, so a
// caller can walk a path without a check at each step.
type Node struct {
	prefix, local string
	attrs         []xattr           // attributes other than namespace declarations
	ns            map[string]string // namespace declarations on this element
	children      []any             // *Node or string (character data)
	parent        *Node
}

type xattr struct{ prefix, local, value string }

// Attr returns the unprefixed attribute local of n.
func (n *Node) Attr(local string) (string, bool) {
	if n == nil {
		return "", false
	}
	for _, a := range n.attrs {
		if a.prefix == "" && a.local == local {
			return a.value, true
		}
	}
	return "", false
}

// Lang returns n's xml:lang attribute ("" when it has none).
func (n *Node) Lang() string {
	if n == nil {
		return ""
	}
	for _, a := range n.attrs {
		if a.prefix == "xml" && a.local == "lang" {
			return a.value
		}
	}
	return ""
}

// Local returns the local name of n.
func (n *Node) Local() string {
	if n == nil {
		return ""
	}
	return n.local
}

// lookup resolves a prefix in scope; an unbound prefix resolves to "".
func (n *Node) lookup(prefix string) string {
	for e := n; e != nil; e = e.parent {
		if u, ok := e.ns[prefix]; ok {
			return u
		}
	}
	if prefix == "xml" {
		return "http://www.w3.org/XML/1998/namespace"
	}
	return ""
}

// Space returns the namespace URI of the element.
func (n *Node) Space() string {
	if n == nil {
		return ""
	}
	return n.lookup(n.prefix)
}

// Parse reads a document into a tree. A DOCTYPE is refused: trusted lists
// have none, and refusing it rules out entity tricks. A document nested
// deeper than MaxDepth or with more than MaxElements elements is refused.
// A literal tab, LF, CR or CRLF in an attribute value reads as one space
// (XML 1.0 section 3.3.3), a character reference such as &#x9; as the
// character it names.
func Parse(data []byte) (*Node, error) {
	d := xml.NewDecoder(bytes.NewReader(normalizeAttrWhitespace(data)))
	d.Strict = true
	var root, cur *Node
	depth, count := 0, 0
	for {
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformedXML, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			count++
			if depth > MaxDepth {
				return nil, fmt.Errorf("%w: nested deeper than %d", ErrMalformedXML, MaxDepth)
			}
			if count > MaxElements {
				return nil, fmt.Errorf("%w: more than %d elements", ErrMalformedXML, MaxElements)
			}
			n := &Node{prefix: t.Name.Space, local: t.Name.Local, parent: cur, ns: map[string]string{}}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					n.ns[a.Name.Local] = a.Value
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					n.ns[""] = a.Value
				default:
					n.attrs = append(n.attrs, xattr{a.Name.Space, a.Name.Local, a.Value})
				}
			}
			if cur == nil {
				if root != nil {
					return nil, fmt.Errorf("%w: two document elements", ErrMalformedXML)
				}
				root = n
			} else {
				cur.children = append(cur.children, n)
			}
			cur = n
		case xml.EndElement:
			if cur == nil || t.Name.Space != cur.prefix || t.Name.Local != cur.local {
				return nil, fmt.Errorf("%w: mismatched end tag", ErrMalformedXML)
			}
			depth--
			cur = cur.parent
		case xml.CharData:
			if cur != nil {
				cur.children = append(cur.children, string(t))
			}
		case xml.Directive:
			return nil, fmt.Errorf("%w: DOCTYPE and other directives are not allowed", ErrMalformedXML)
		}
	}
	if root == nil || cur != nil {
		return nil, fmt.Errorf("%w: no complete document element", ErrMalformedXML)
	}
	return root, nil
}

// Canonicalize returns the exclusive canonical form (without comments) of
// the subtree at n, leaving out the element skip (the enveloped signature)
// when not nil.
func Canonicalize(n, skip *Node) []byte {
	var b bytes.Buffer
	writeExc(&b, n, skip, map[string]string{})
	return b.Bytes()
}

// writeExc renders n; rendered holds the namespace declarations already in
// force in the output (prefix → URI).
func writeExc(b *bytes.Buffer, n, skip *Node, rendered map[string]string) {
	// Visibly utilised prefixes: the element's and its attributes'.
	used := map[string]bool{n.prefix: true}
	for _, a := range n.attrs {
		if a.prefix != "" && a.prefix != "xml" {
			used[a.prefix] = true
		}
	}
	var decls []string
	next := rendered
	for p := range used {
		u := n.lookup(p)
		prev, was := rendered[p]
		if was && prev == u {
			continue
		}
		if !was && p == "" && u == "" {
			continue // default namespace empty and never rendered
		}
		decls = append(decls, p)
	}
	if len(decls) > 0 {
		next = make(map[string]string, len(rendered)+len(decls))
		for k, v := range rendered {
			next[k] = v
		}
	}
	sort.Strings(decls) // "" (default) sorts first
	b.WriteByte('<')
	b.WriteString(qname(n.prefix, n.local))
	for _, p := range decls {
		u := n.lookup(p)
		next[p] = u
		if p == "" {
			b.WriteString(` xmlns="`)
		} else {
			b.WriteString(` xmlns:` + p + `="`)
		}
		b.WriteString(escapeAttr(u))
		b.WriteByte('"')
	}
	attrs := append([]xattr(nil), n.attrs...)
	sort.Slice(attrs, func(i, j int) bool {
		ui, uj := attrURI(n, attrs[i]), attrURI(n, attrs[j])
		if ui != uj {
			return ui < uj
		}
		return attrs[i].local < attrs[j].local
	})
	for _, a := range attrs {
		b.WriteByte(' ')
		b.WriteString(qname(a.prefix, a.local))
		b.WriteString(`="`)
		b.WriteString(escapeAttr(a.value))
		b.WriteByte('"')
	}
	b.WriteByte('>')
	for _, c := range n.children {
		switch v := c.(type) {
		case string:
			b.WriteString(escapeText(v))
		case *Node:
			if v != skip {
				writeExc(b, v, skip, next)
			}
		}
	}
	b.WriteString("</" + qname(n.prefix, n.local) + ">")
}

func attrURI(n *Node, a xattr) string {
	if a.prefix == "" {
		return ""
	}
	return n.lookup(a.prefix)
}

func qname(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", `"`, "&quot;", "\t", "&#x9;", "\n", "&#xA;", "\r", "&#xD;")
)

func escapeText(s string) string { return textEscaper.Replace(s) }
func escapeAttr(s string) string { return attrEscaper.Replace(s) }

// findByID finds the element whose Id attribute is id.
func findByID(n *Node, id string) *Node {
	if v, ok := n.Attr("Id"); ok && v == id {
		return n
	}
	for _, c := range n.children {
		if e, ok := c.(*Node); ok {
			if f := findByID(e, id); f != nil {
				return f
			}
		}
	}
	return nil
}

// Child returns the first child element with the given namespace and
// local name.
func (n *Node) Child(space, local string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if e, ok := c.(*Node); ok && e.local == local && e.Space() == space {
			return e
		}
	}
	return nil
}

// ChildrenNamed returns the child elements with the given namespace and
// local name, in document order.
func (n *Node) ChildrenNamed(space, local string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.children {
		if e, ok := c.(*Node); ok && e.local == local && e.Space() == space {
			out = append(out, e)
		}
	}
	return out
}

// Elements returns the child elements of n, in document order.
func (n *Node) Elements() []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.children {
		if e, ok := c.(*Node); ok {
			out = append(out, e)
		}
	}
	return out
}

// Text returns the character data directly in n (not its descendants').
func (n *Node) Text() string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range n.children {
		if s, ok := c.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}
