package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// rowFlags are the flags a row defines: a leaf's from its definition, a
// command with its own run function's by probing it (as completion does).
func rowFlags(t *testing.T, c command) []string {
	t.Helper()
	var fs *flag.FlagSet
	switch do := c.do.(type) {
	case *leaf:
		fs, _, _ = do.flagSet(c.name)
	case func([]string) int:
		fs, _ = probeCommand(do)
	}
	if fs == nil {
		return nil
	}
	var out []string
	fs.VisitAll(func(f *flag.Flag) { out = append(out, f.Name) })
	return out
}

// section is the part of a script from the line that is exactly start to
// the next line with start's indentation (the next case of the same case
// statement), or to the end.
func section(script, start string) string {
	i := strings.Index(script, "\n"+start+"\n")
	if i < 0 {
		return ""
	}
	rest := script[i+len(start)+2:]
	indent := start[:len(start)-len(strings.TrimLeft(start, " "))]
	for line := range strings.Lines(rest) {
		if strings.HasPrefix(line, indent) && !strings.HasPrefix(line, indent+" ") {
			return rest[:strings.Index(rest, line)]
		}
	}
	return rest
}

// TestTableInHelpAndCompletion: every row of the command table appears in
// the help that lists it (pecet --help for commands, pecet GROUP --help for
// the rows below a group) and in every completion script, with each of its
// flags completed where that row's words are: the help and the scripts are
// made from the table and cannot drift from it.
func TestTableInHelpAndCompletion(t *testing.T) {
	top := capture(usage)
	scripts := map[string]string{}
	for _, shell := range shells {
		scripts[shell] = completionScript(t, shell)
	}
	for _, c := range commands {
		group, sub, isSub := strings.Cut(c.name, " ")
		flags := rowFlags(t, c)
		if c.do != nil && c.name != "completion" && len(flags) == 0 {
			t.Errorf("%s: no flags found", c.name)
			continue
		}
		if isSub {
			if !strings.Contains(groupUsage(group), "pecet "+c.name) {
				t.Errorf("pecet %s --help lacks %s", group, c.name)
			}
		} else if !strings.Contains(top, "  "+c.name) || !strings.Contains(top, c.summary) {
			t.Errorf("pecet --help lacks %s: %s", c.name, c.summary)
		}
		if c.do == nil && len(subcommands(c.name)) == 0 {
			t.Errorf("group %s has no rows", c.name)
		}
		// Where each shell completes this row's flags.
		bash := section(scripts["bash"], "    "+group+")")
		zsh := section(scripts["zsh"], "    "+group+")")
		fishCond := "__pecet_using " + group
		if isSub {
			for line := range strings.Lines(bash) {
				if strings.Contains(line, " "+sub+") words='") {
					bash = line
				}
			}
			zsh = section(zsh, "        "+sub+")")
			fishCond += " " + sub
		} else if len(subcommands(c.name)) > 0 {
			// timestamp: its own flags after any other second word.
			_, bash, _ = strings.Cut(bash, "*) words=")
			zsh = section(zsh, "        *)")
		}
		for _, f := range flags {
			if !strings.Contains(bash, "--"+f+" ") && !strings.Contains(bash, "--"+f+"'") {
				t.Errorf("bash: %s --%s not completed", c.name, f)
			}
			if !strings.Contains(zsh, "'--"+f+"[") {
				t.Errorf("zsh: %s --%s not completed", c.name, f)
			}
			found := false
			for line := range strings.Lines(scripts["fish"]) {
				if strings.Contains(line, "-n '"+fishCond+"'") || strings.Contains(line, "-n '"+fishCond+";") {
					found = found || strings.Contains(line, " -l "+f+" ")
				}
			}
			if !found {
				t.Errorf("fish: %s --%s not completed", c.name, f)
			}
		}
		for _, shell := range shells {
			if word := c.name[strings.LastIndex(c.name, " ")+1:]; !strings.Contains(scripts[shell], word) {
				t.Errorf("%s script lacks %s", shell, c.name)
			}
		}
	}
}

// TestTableRows: every row runs as a leaf, its own function or a group;
// paths are unique, and a row below a group has its group row.
func TestTableRows(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands {
		switch c.do.(type) {
		case *leaf, func([]string) int, nil:
		default:
			t.Errorf("%s: a row runs a *leaf, a func([]string) int or nil (a group), not %T", c.name, c.do)
		}
		if seen[c.name] {
			t.Errorf("%s: two rows", c.name)
		}
		seen[c.name] = true
		if group, _, ok := strings.Cut(c.name, " "); ok && !seen[group] {
			t.Errorf("%s: no row %q before it", c.name, group)
		}
		if l, ok := c.do.(*leaf); ok {
			fs, _, _ := l.flagSet(c.name)
			for _, r := range l.required {
				if fs.Lookup(r) == nil {
					t.Errorf("%s: required flag --%s is not defined", c.name, r)
				}
			}
		}
	}
}

// runTestArchive is a command in the shape other commands are added in: its
// own run function dispatches its subcommands, with no rows for them.
func runTestArchive(args []string) int {
	if len(args) == 0 || args[0] == "--help" {
		fmt.Fprint(os.Stderr, "Usage:\n  pecet test-archive seal --out DIR FILE...\n  pecet test-archive verify --record FILE --in FILE\n")
		return exitUsage
	}
	fs, _ := newFlags("test-archive "+args[0], "test-archive "+args[0], "client")
	switch args[0] {
	case "seal":
		fs.String("out", "", "folder `DIR` for the records")
		return parseArgs(fs, args[1:])
	case "verify":
		fs.String("record", "", "evidence record `FILE`")
		fs.String("in", "", "the archived `FILE`")
		return parse(fs, args[1:])
	}
	return exitUsage
}

// TestCompletionOfDispatcher: a command added as one row with its own run
// function that dispatches subcommands (pecet X SUB) gets them completed,
// with their flags, from its usage and probing, as before the table.
func TestCompletionOfDispatcher(t *testing.T) {
	withRows(t, command{"test-archive", "seal and verify archives", runTestArchive})
	s := specFor(t, commandSpecs(), "test-archive")
	var got []string
	for _, sub := range s.subs {
		got = append(got, sub.name+":"+flagWords(sub.flags, false)+":"+map[bool]string{true: "files"}[sub.fileArgs])
	}
	want := []string{
		"seal:--as --ca --cert --dev-dir --json --key-file --out --server --timeout:files",
		"verify:--as --ca --cert --dev-dir --in --json --key-file --record --server --timeout:",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("test-archive subcommands:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, shell := range shells {
		want := "--record"
		if shell == "fish" {
			want = "-l record"
		}
		if script := completionScript(t, shell); !strings.Contains(script, want) {
			t.Errorf("%s script lacks test-archive verify --record", shell)
		}
	}
}

// TestPositionalAfterFlagValue: the positional argument is found after a
// flag's value even when that value spells a flag's name (--ca ca ID).
func TestPositionalAfterFlagValue(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("ca", "", "")
	fs.Bool("json", false, "")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--ca", "ca", "ID"}, "ID"},
		{[]string{"ID", "--ca", "ca"}, "ID"},
		{[]string{"--ca", "file", "ID"}, "ID"},
		{[]string{"--json", "ID"}, "ID"},
		{[]string{"--ca=ca", "ID"}, "ID"},
	} {
		if got, _ := positional(fs, tt.args); got != tt.want {
			t.Errorf("positional(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
