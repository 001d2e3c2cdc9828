package xmldsig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// A small XML tree and Exclusive XML Canonicalization 1.0
// (https://www.w3.org/TR/xml-exc-c14n/), enough for the enveloped XMLDSig
// signatures of ETSI TS 119 612 trusted lists and of filings. The tree keeps
// the prefixes as written, which canonicalization needs and encoding/xml's
// namespace-resolving API loses, and every node of the XPath data model that
// has a canonical form: elements, character data, processing instructions
// and comments, also those before and after the document element.

// ErrMalformedXML is returned for XML the parser refuses.
var ErrMalformedXML = errors.New("xmldsig: malformed or disallowed XML")

// XML bounds: a trusted list has depth about 12 and tens of thousands of
// elements, and no or a few processing instructions and comments; the EU
// list of lists is smaller. Parse refuses a document beyond them.
const (
	MaxDepth          = 64
	MaxElements       = 500000
	MaxPIsAndComments = 100000
)

const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

// Node is an element of a parsed document, with its prefixes as written.
// The accessors are nil-safe: a missing element reads as empty, so a
// caller can walk a path without a check at each step.
type Node struct {
	prefix, local string
	attrs         []xattr           // attributes other than namespace declarations
	ns            map[string]string // namespace declarations on this element
	children      []any             // *Node, string (character data, adjacent runs merged), procInst or comment
	parent        *Node
	// before and after are, on the document element only, the processing
	// instructions and comments before and after it (procInst or comment).
	before, after []any
}

type xattr struct{ prefix, local, value string }

// procInst is a processing instruction: its target and its string value
// (the data after the target and the whitespace that follows it).
type procInst struct{ target, data string }

// comment is the text of a comment.
type comment string

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

// lookup resolves a prefix in scope; an unbound prefix resolves to "" (Parse
// refuses a document with one but for the default namespace, where ""
// means none).
func (n *Node) lookup(prefix string) string {
	u, _ := n.resolve(prefix)
	return u
}

// resolve resolves a prefix in scope and says whether it is bound.
func (n *Node) resolve(prefix string) (string, bool) {
	for e := n; e != nil; e = e.parent {
		if u, ok := e.ns[prefix]; ok {
			return u, true
		}
	}
	if prefix == "xml" {
		return nsXML, true
	}
	return "", false
}

// Space returns the namespace URI of the element.
func (n *Node) Space() string {
	if n == nil {
		return ""
	}
	return n.lookup(n.prefix)
}

// Parse reads a document into a tree, and refuses what is not a
// namespace-well-formed XML 1.0 document or has no canonical form (see
// doc.go): a DOCTYPE (trusted lists have none, and refusing it rules out
// entity tricks), a document nested deeper than MaxDepth, with more than
// MaxElements elements or more than MaxPIsAndComments processing
// instructions and comments, an XML declaration anywhere but at the start,
// a PI target "xml" in any case or with a colon, characters outside XML's
// Char in a comment or PI, anything but whitespace (and a byte-order mark at
// the start) around the document element, a duplicate attribute or
// namespace declaration, an unbound prefix, a declaration of the reserved
// prefixes or namespaces, and a namespace URI that is not absolute.
// A literal tab, LF, CR or CRLF in an attribute value reads as one space
// (XML 1.0 section 3.3.3), a character reference such as &#x9; as the
// character it names; a CR or CRLF in a comment or PI as an LF (section
// 2.11, which encoding/xml does only in character data).
func Parse(data []byte) (*Node, error) {
	data = normalizeAttrWhitespace(data)
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	bom := 0
	if bytes.HasPrefix(data, []byte("\uFEFF")) {
		bom = 3
	}
	var root, cur *Node
	var before []any
	var text []byte // character data of cur not yet in its children
	flush := func() {
		if len(text) > 0 {
			cur.children = append(cur.children, string(text))
			text = text[:0]
		}
	}
	// misc adds a PI or comment where it stands: in cur, or around the
	// document element.
	misc := func(x any) {
		switch {
		case cur != nil:
			flush()
			cur.children = append(cur.children, x)
		case root == nil:
			before = append(before, x)
		default:
			root.after = append(root.after, x)
		}
	}
	depth, count, nmisc := 0, 0, 0
	for {
		off := d.InputOffset()
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
			n, err := newElement(t, cur)
			if err != nil {
				return nil, err
			}
			if cur == nil {
				if root != nil {
					return nil, fmt.Errorf("%w: two document elements", ErrMalformedXML)
				}
				root = n
			} else {
				flush()
				cur.children = append(cur.children, n)
			}
			cur = n
		case xml.EndElement:
			if cur == nil || t.Name.Space != cur.prefix || t.Name.Local != cur.local {
				return nil, fmt.Errorf("%w: mismatched end tag", ErrMalformedXML)
			}
			flush()
			depth--
			cur = cur.parent
		case xml.CharData:
			if cur != nil {
				text = append(text, t...)
				continue
			}
			// Around the document element only white space, as written
			// (not as a reference or CDATA), and a byte-order mark first.
			raw := data[off:d.InputOffset()]
			if off == 0 {
				raw = raw[bom:]
			}
			if len(bytes.Trim(raw, " \t\r\n")) > 0 {
				return nil, fmt.Errorf("%w: content outside the document element", ErrMalformedXML)
			}
		case xml.Comment:
			if nmisc++; nmisc > MaxPIsAndComments {
				return nil, fmt.Errorf("%w: more than %d processing instructions and comments", ErrMalformedXML, MaxPIsAndComments)
			}
			if !isXMLChars(t) {
				return nil, fmt.Errorf("%w: a comment holds a character XML does not allow", ErrMalformedXML)
			}
			misc(comment(normalizeLineEnds(string(t))))
		case xml.ProcInst:
			if t.Target == "xml" && off == int64(bom) {
				// The XML declaration, no PI: checked and left out.
				if !reXMLDecl.Match(t.Inst) {
					return nil, fmt.Errorf("%w: malformed XML declaration", ErrMalformedXML)
				}
				continue
			}
			if nmisc++; nmisc > MaxPIsAndComments {
				return nil, fmt.Errorf("%w: more than %d processing instructions and comments", ErrMalformedXML, MaxPIsAndComments)
			}
			switch {
			case strings.EqualFold(t.Target, "xml"):
				return nil, fmt.Errorf("%w: an XML declaration or a PI target xml not at the start", ErrMalformedXML)
			case strings.Contains(t.Target, ":"):
				return nil, fmt.Errorf("%w: a PI target with a colon", ErrMalformedXML)
			case !isXMLChars(t.Inst):
				return nil, fmt.Errorf("%w: a processing instruction holds a character XML does not allow", ErrMalformedXML)
			}
			misc(procInst{t.Target, normalizeLineEnds(string(t.Inst))})
		case xml.Directive:
			return nil, fmt.Errorf("%w: DOCTYPE and other directives are not allowed", ErrMalformedXML)
		}
	}
	if root == nil || cur != nil {
		return nil, fmt.Errorf("%w: no complete document element", ErrMalformedXML)
	}
	root.before = before
	return root, nil
}

// reXMLDecl is the XML declaration after its "xml" (XML 1.0 production
// XMLDecl); encoding/xml has checked the version is 1.0 and the encoding
// UTF-8.
var reXMLDecl = regexp.MustCompile(`^version\s*=\s*(?:"1\.[0-9]+"|'1\.[0-9]+')` +
	`(?:\s+encoding\s*=\s*(?:"[A-Za-z][A-Za-z0-9._-]*"|'[A-Za-z][A-Za-z0-9._-]*'))?` +
	`(?:\s+standalone\s*=\s*(?:"(?:yes|no)"|'(?:yes|no)'))?\s*$`)

// newElement makes the element of t, a child of parent (nil for the
// document element), and checks its names and namespace declarations
// (Namespaces in XML 1.0, sections 3 to 6): each declared once, the
// prefixes xml and xmlns and their namespaces reserved, no prefix
// undeclared with "", every namespace URI absolute (Canonical XML 1.0
// section 2 fails on relative ones), every prefix used bound, and no two
// attributes of the same expanded name.
func newElement(t xml.StartElement, parent *Node) (*Node, error) {
	n := &Node{prefix: t.Name.Space, local: t.Name.Local, parent: parent, ns: map[string]string{}}
	if strings.Contains(n.local, ":") {
		return nil, fmt.Errorf("%w: element name is not a qualified name", ErrMalformedXML)
	}
	for _, a := range t.Attr {
		var p string
		switch {
		case a.Name.Space == "xmlns":
			p = a.Name.Local
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			p = ""
		default:
			if strings.Contains(a.Name.Local, ":") {
				return nil, fmt.Errorf("%w: attribute name is not a qualified name", ErrMalformedXML)
			}
			n.attrs = append(n.attrs, xattr{a.Name.Space, a.Name.Local, a.Value})
			continue
		}
		if _, dup := n.ns[p]; dup {
			return nil, fmt.Errorf("%w: namespace declaration repeated", ErrMalformedXML)
		}
		switch {
		case p == "xml" && a.Value != nsXML, p != "xml" && a.Value == nsXML:
			return nil, fmt.Errorf("%w: the prefix xml is bound to its namespace alone", ErrMalformedXML)
		case p == "xmlns" || a.Value == nsXMLNS:
			return nil, fmt.Errorf("%w: the prefix xmlns and its namespace cannot be declared", ErrMalformedXML)
		case p != "" && a.Value == "":
			return nil, fmt.Errorf("%w: a prefix cannot be undeclared", ErrMalformedXML)
		case a.Value != "" && !isAbsoluteURI(a.Value):
			return nil, fmt.Errorf("%w: a namespace URI is not absolute", ErrMalformedXML)
		}
		n.ns[p] = a.Value
	}
	if _, ok := n.resolve(n.prefix); !ok && n.prefix != "" {
		return nil, fmt.Errorf("%w: element prefix not declared", ErrMalformedXML)
	}
	seen := make(map[[2]string]bool, len(n.attrs))
	for _, a := range n.attrs {
		u, ok := "", true
		if a.prefix != "" {
			u, ok = n.resolve(a.prefix)
		}
		if !ok {
			return nil, fmt.Errorf("%w: attribute prefix not declared", ErrMalformedXML)
		}
		k := [2]string{u, a.local}
		if seen[k] {
			return nil, fmt.Errorf("%w: attribute repeated", ErrMalformedXML)
		}
		seen[k] = true
	}
	return n, nil
}

// isAbsoluteURI says whether s is an absolute URI as far as its characters
// go (RFC 3986 section 3): a scheme, a colon, then only unreserved and
// reserved characters (not the brackets of an IP literal), well-formed
// percent-escapes and at most one "#". libxml2 also checks the authority's
// form; doc.go says where this stops.
func isAbsoluteURI(s string) bool {
	colon := strings.IndexByte(s, ':')
	if colon < 1 {
		return false
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		letter := 'a' <= c|0x20 && c|0x20 <= 'z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	hash := false
	for i := colon + 1; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c|0x20 && c|0x20 <= 'z', '0' <= c && c <= '9', strings.IndexByte("-._~:/?@!$&'()*+,;=", c) >= 0:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		case c == '#' && !hash:
			hash = true
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'f'
}

// isXMLChars says whether b is UTF-8 of XML 1.0 Chars only (production
// Char): encoding/xml checks character data and attribute values, not
// comments and PIs.
func isXMLChars(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			return false
		}
		ok := r == 0x09 || r == 0x0A || r == 0x0D ||
			r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
		if !ok {
			return false
		}
		b = b[size:]
	}
	return true
}

// lineEnds turns CRLF and a lone CR into LF (XML 1.0 section 2.11).
var lineEnds = strings.NewReplacer("\r\n", "\n", "\r", "\n")

func normalizeLineEnds(s string) string { return lineEnds.Replace(s) }

// Canonicalize returns the exclusive canonical form without comments of
// the subtree at n, leaving out the element skip (the enveloped signature)
// when not nil: what a reference to an element ("#id") or the SignedInfo
// digests. The PIs around the document element are not in it.
func Canonicalize(n, skip *Node) []byte {
	return canonicalize(n, skip, false, false)
}

// CanonicalizeDocument returns the exclusive canonical form without
// comments of the whole document whose document element is root, leaving
// out skip when not nil: what a reference to the whole document (URI="")
// digests. The PIs before the document element are each followed by an LF,
// those after it each preceded by one (Canonical XML 1.0 section 2.3).
func CanonicalizeDocument(root, skip *Node) []byte {
	return canonicalize(root, skip, true, false)
}

// canonicalize is Canonicalize (document false) or CanonicalizeDocument
// (document true), with comments when comments is true (the #WithComments
// variant, which the tests compare with libxml2's).
func canonicalize(n, skip *Node, document, comments bool) []byte {
	c := &c14n{skip: skip, comments: comments}
	if document {
		for _, x := range n.before {
			if c.misc(x) {
				c.b.WriteByte('\n')
			}
		}
	}
	c.element(n, map[string]string{})
	if document {
		for _, x := range n.after {
			if _, isComment := x.(comment); isComment && !c.comments {
				continue
			}
			c.b.WriteByte('\n')
			c.misc(x)
		}
	}
	return c.b.Bytes()
}

type c14n struct {
	b        bytes.Buffer
	skip     *Node
	comments bool
}

// misc writes a PI or comment (a comment only with comments) and says
// whether it wrote anything.
func (c *c14n) misc(x any) bool {
	switch v := x.(type) {
	case procInst:
		c.b.WriteString("<?" + v.target)
		if v.data != "" {
			c.b.WriteByte(' ')
			c.b.WriteString(v.data)
		}
		c.b.WriteString("?>")
		return true
	case comment:
		if c.comments {
			c.b.WriteString("<!--" + string(v) + "-->")
			return true
		}
	}
	return false
}

// element renders n; rendered holds the namespace declarations already in
// force in the output (prefix → URI).
func (c *c14n) element(n *Node, rendered map[string]string) {
	b := &c.b
	// Visibly utilised prefixes: the element's and its attributes'; xml is
	// never declared.
	used := map[string]bool{}
	if n.prefix != "xml" {
		used[n.prefix] = true
	}
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
	for _, ch := range n.children {
		switch v := ch.(type) {
		case string:
			b.WriteString(escapeText(v))
		case *Node:
			if v != c.skip {
				c.element(v, next)
			}
		default:
			c.misc(v)
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

// findByID finds the one element whose Id attribute is id; none, or more
// than one, is an error.
func findByID(root *Node, id string) (*Node, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: reference \"#\" names no Id", ErrSignature)
	}
	var found []*Node
	var walk func(n *Node)
	walk = func(n *Node) { // as deep as the document, which Parse bounds
		if v, ok := n.Attr("Id"); ok && v == id {
			found = append(found, n)
		}
		for _, c := range n.children {
			if e, ok := c.(*Node); ok && len(found) < 2 {
				walk(e)
			}
		}
	}
	walk(root)
	if len(found) > 1 {
		// The reference is ambiguous: which element a verifier digests and
		// which one an application reads could differ (signature wrapping).
		return nil, fmt.Errorf("%w: Id %q names more than one element", ErrSignature, id)
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: reference %q not found", ErrSignature, "#"+id)
	}
	return found[0], nil
}

// within says whether n is el or inside it.
func within(n, el *Node) bool {
	for ; n != nil; n = n.parent {
		if n == el {
			return true
		}
	}
	return false
}

// hasPIsOutside says whether the document element n has processing
// instructions before or after it.
func (n *Node) hasPIsOutside() bool {
	for _, x := range append(append([]any{}, n.before...), n.after...) {
		if _, ok := x.(procInst); ok {
			return true
		}
	}
	return false
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
