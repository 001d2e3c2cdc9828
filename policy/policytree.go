package policy

// The valid_policy_tree of RFC 5280 6.1.2 (a), kept as one slice of nodes
// per depth with parent links. The tree is bounded by the policies a path
// carries; maxPolicyNodes stops a path crafted to blow it up (each mapping
// can multiply nodes).

const anyPolicy = "2.5.29.32.0"

const maxPolicyNodes = 4096

type policyNode struct {
	valid    string
	expected map[string]bool
	parent   *policyNode
	children int
	deleted  bool
}

type policyTree struct {
	levels [][]*policyNode // levels[0] is the root
	count  int
}

func newPolicyTree() *policyTree {
	root := &policyNode{valid: anyPolicy, expected: map[string]bool{anyPolicy: true}}
	return &policyTree{levels: [][]*policyNode{{root}}, count: 1}
}

func (t *policyTree) depth() int { return len(t.levels) - 1 }

func (t *policyTree) add(parent *policyNode, valid string, expected map[string]bool, level int) bool {
	if t.count >= maxPolicyNodes {
		return false
	}
	for len(t.levels) <= level {
		t.levels = append(t.levels, nil)
	}
	n := &policyNode{valid: valid, expected: expected, parent: parent}
	parent.children++
	t.levels[level] = append(t.levels[level], n)
	t.count++
	return true
}

func (t *policyTree) live(level int) []*policyNode {
	if level >= len(t.levels) {
		return nil
	}
	var out []*policyNode
	for _, n := range t.levels[level] {
		if !n.deleted {
			out = append(out, n)
		}
	}
	return out
}

func (t *policyTree) remove(n *policyNode) {
	if n.deleted {
		return
	}
	n.deleted = true
	if n.parent != nil {
		n.parent.children--
	}
	// Children are removed by the next prune (their parent is deleted).
}

// prune deletes, bottom up, nodes above the deepest level that have no
// children, and nodes whose parent was deleted. It reports whether the tree
// still has a node at the deepest level (otherwise the tree is NULL).
func (t *policyTree) prune() bool {
	// Top down: drop orphans.
	for l := 1; l < len(t.levels); l++ {
		for _, n := range t.levels[l] {
			if !n.deleted && n.parent.deleted {
				t.remove(n)
			}
		}
	}
	for l := len(t.levels) - 2; l >= 0; l-- {
		for _, n := range t.levels[l] {
			if !n.deleted && n.children == 0 {
				t.remove(n)
			}
		}
	}
	return len(t.live(len(t.levels)-1)) > 0
}

func set(vals ...string) map[string]bool {
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

// processCertPolicies is 6.1.3 (d) for the certificate at depth i.
func (t *policyTree) processCertPolicies(i int, policies []string, anyAllowed bool) bool {
	parents := t.live(i - 1)
	hasAny := false
	for _, p := range policies {
		if p == anyPolicy {
			hasAny = true
			continue
		}
		matched := false
		for _, n := range parents {
			if n.expected[p] {
				if !t.add(n, p, set(p), i) {
					return false
				}
				matched = true
			}
		}
		if !matched {
			for _, n := range parents {
				if n.valid == anyPolicy {
					if !t.add(n, p, set(p), i) {
						return false
					}
				}
			}
		}
	}
	if hasAny && anyAllowed {
		for _, n := range parents {
			have := map[string]bool{}
			for _, c := range t.live(i) {
				if c.parent == n {
					have[c.valid] = true
				}
			}
			for e := range n.expected {
				if !have[e] {
					if !t.add(n, e, set(e), i) {
						return false
					}
				}
			}
		}
	}
	for len(t.levels) <= i {
		t.levels = append(t.levels, nil)
	}
	return t.prune()
}

// applyMappings is 6.1.4 (b) at depth i.
func (t *policyTree) applyMappings(i int, mappings map[string][]string, order []string, allowed bool) bool {
	for _, idp := range order {
		sdps := mappings[idp]
		nodes := t.live(i)
		if allowed {
			found := false
			for _, n := range nodes {
				if n.valid == idp {
					n.expected = set(sdps...)
					found = true
				}
			}
			if !found {
				for _, n := range nodes {
					if n.valid == anyPolicy {
						if !t.add(n.parent, idp, set(sdps...), i) {
							return false
						}
						break
					}
				}
			}
		} else {
			for _, n := range nodes {
				if n.valid == idp {
					t.remove(n)
				}
			}
		}
	}
	return t.prune()
}

// intersect is 6.1.5 (g) with a user-initial-policy-set that is not
// any-policy. It reports whether the tree is non-NULL afterwards.
func (t *policyTree) intersect(initial map[string]bool) bool {
	n := t.depth()
	// valid_policy_node_set: nodes whose parent is an anyPolicy node.
	var vps []*policyNode
	for l := 1; l <= n; l++ {
		for _, x := range t.live(l) {
			if x.parent.valid == anyPolicy {
				vps = append(vps, x)
			}
		}
	}
	inVPS := map[string]bool{}
	for _, x := range vps {
		if x.valid != anyPolicy && !initial[x.valid] {
			t.remove(x)
			continue
		}
		inVPS[x.valid] = true
	}
	t.prune() // drops descendants of removed nodes
	for _, x := range t.live(n) {
		if x.valid != anyPolicy {
			continue
		}
		for p := range initial {
			if !inVPS[p] {
				if !t.add(x.parent, p, set(p), n) {
					return false
				}
			}
		}
		t.remove(x)
	}
	return t.prune()
}

// leafPolicies lists the valid policies at the deepest level.
func (t *policyTree) leafPolicies() []string {
	var out []string
	for _, x := range t.live(t.depth()) {
		out = append(out, x.valid)
	}
	return out
}
