package policy

import (
	"net"
	"net/url"
	"strings"
)

// Name constraints state of RFC 5280 6.1.2 (b) and (c), per name type.
// permitted[t] == nil means no constraint of that type has been met yet
// (unbounded); a non-nil empty slice means nothing of that type is allowed.
type nameConstraints struct {
	permitted map[int][]subtree
	excluded  map[int][]subtree
}

func newNameConstraints() *nameConstraints {
	return &nameConstraints{permitted: map[int][]subtree{}, excluded: map[int][]subtree{}}
}

// add folds a CA certificate's constraints into the state (6.1.4 (g)).
func (nc *nameConstraints) add(permitted, excluded []subtree) {
	byType := map[int][]subtree{}
	for _, p := range permitted {
		byType[p.tag] = append(byType[p.tag], p)
	}
	for t, list := range byType {
		cur, bounded := nc.permitted[t]
		if !bounded {
			nc.permitted[t] = list
			continue
		}
		// Intersection: subtrees of these types nest or are disjoint, so
		// the intersection of two is the narrower one or nothing.
		out := []subtree{}
		for _, a := range cur {
			for _, b := range list {
				switch {
				case within(t, a, b):
					out = append(out, a)
				case within(t, b, a):
					out = append(out, b)
				}
			}
		}
		nc.permitted[t] = out
	}
	for _, e := range excluded {
		nc.excluded[e.tag] = append(nc.excluded[e.tag], e)
	}
}

// check reports the first name of the certificate that the state forbids,
// or "" when all are allowed.
func (nc *nameConstraints) check(subject dn, emails []string, sans []generalName) string {
	type cand struct {
		tag  int
		name string
		dn   dn
		ip   []byte
	}
	var names []cand
	if len(subject) > 0 {
		names = append(names, cand{tag: gnDirectory, dn: subject})
	}
	for _, e := range emails {
		names = append(names, cand{tag: gnRFC822, name: e})
	}
	for _, g := range sans {
		switch g.tag {
		case gnDirectory:
			d, _, err := parseDN(g.value)
			if err != nil {
				return "a malformed directoryName"
			}
			names = append(names, cand{tag: gnDirectory, dn: d})
		case gnRFC822, gnDNS, gnURI:
			names = append(names, cand{tag: g.tag, name: string(g.value)})
		case gnIP:
			names = append(names, cand{tag: gnIP, ip: g.value})
		}
	}
	for _, n := range names {
		match := func(st subtree) bool {
			switch n.tag {
			case gnDirectory:
				p, _, err := parseDN(st.value)
				return err == nil && n.dn.hasPrefix(p)
			case gnIP:
				return ipInNet(n.ip, st.value)
			}
			return nameMatches(n.tag, n.name, string(st.value))
		}
		label := describe(n.tag, n.name, n.dn, n.ip)
		if list, bounded := nc.permitted[n.tag]; bounded {
			ok := false
			for _, st := range list {
				if match(st) {
					ok = true
					break
				}
			}
			if !ok {
				return label + " is outside the permitted subtrees"
			}
		}
		for _, st := range nc.excluded[n.tag] {
			if match(st) {
				return label + " is in an excluded subtree"
			}
		}
	}
	return ""
}

func describe(tag int, name string, d dn, ip []byte) string {
	switch tag {
	case gnDirectory:
		return "directory name " + d.key()
	case gnRFC822:
		return "e-mail address " + name
	case gnDNS:
		return "DNS name " + name
	case gnURI:
		return "URI " + name
	case gnIP:
		return "IP address " + net.IP(ip).String()
	}
	return "name"
}

// within reports whether subtree a lies inside subtree b.
func within(t int, a, b subtree) bool {
	switch t {
	case gnDirectory:
		da, _, err1 := parseDN(a.value)
		db, _, err2 := parseDN(b.value)
		return err1 == nil && err2 == nil && da.hasPrefix(db)
	case gnIP:
		if len(a.value) != len(b.value) || len(a.value)%2 != 0 {
			return false
		}
		n := len(a.value) / 2
		for i := 0; i < n; i++ {
			// a's mask must be at least as long as b's, and a's network
			// inside b's.
			if a.value[n+i]&b.value[n+i] != b.value[n+i] || a.value[i]&b.value[n+i] != b.value[i]&b.value[n+i] {
				return false
			}
		}
		return true
	case gnRFC822, gnURI:
		as, bs := strings.ToLower(string(a.value)), strings.ToLower(string(b.value))
		if strings.HasPrefix(as, ".") {
			return strings.HasPrefix(bs, ".") && strings.HasSuffix(as, bs)
		}
		if t == gnRFC822 {
			return nameMatches(t, as, bs)
		}
		return as == bs || (strings.HasPrefix(bs, ".") && strings.HasSuffix(as, bs))
	case gnDNS:
		return nameMatches(t, string(a.value), string(b.value))
	}
	return false
}

// nameMatches applies a constraint of type t to a name (RFC 5280 4.2.1.10).
func nameMatches(t int, name, constraint string) bool {
	name, constraint = strings.ToLower(name), strings.ToLower(constraint)
	switch t {
	case gnDNS:
		if constraint == "" {
			return true
		}
		c := strings.TrimPrefix(constraint, ".")
		return name == c && !strings.HasPrefix(constraint, ".") || strings.HasSuffix(name, "."+c)
	case gnRFC822:
		if strings.Contains(constraint, "@") {
			return name == constraint
		}
		at := strings.LastIndexByte(name, '@')
		host := name[at+1:]
		if strings.HasPrefix(constraint, ".") {
			return strings.HasSuffix(host, constraint)
		}
		return host == constraint
	case gnURI:
		u, err := url.Parse(name)
		if err != nil || u.Hostname() == "" {
			return false // a URI without a host cannot satisfy a constraint
		}
		host := u.Hostname()
		if strings.HasPrefix(constraint, ".") {
			return strings.HasSuffix(host, constraint)
		}
		return host == constraint
	}
	return false
}
