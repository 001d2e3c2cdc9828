package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
)

const completionUsage = `Usage: pecet completion bash|zsh|fish

Prints a completion script for the shell, made from pecet's own commands
and flags. Load it with:
  bash:  source <(pecet completion bash)      (or save it in /etc/bash_completion.d/pecet)
  zsh:   pecet completion zsh > "${fpath[1]}/_pecet"   (then restart zsh)
  fish:  pecet completion fish > ~/.config/fish/completions/pecet.fish
`

var shells = []string{"bash", "zsh", "fish"}

func runCompletion(args []string) int {
	fs := flag.NewFlagSet("pecet completion", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), completionUsage) }
	if code := parseArgs(fs, args); code >= 0 {
		return code
	}
	args = fs.Args()
	if len(args) != 1 || !slices.Contains(shells, args[0]) {
		fmt.Fprint(os.Stderr, "pecet completion: name one shell\n\n"+completionUsage)
		return exitUsage
	}
	w := os.Stdout
	specs := commandSpecs()
	switch args[0] {
	case "bash":
		writeBash(w, specs)
	case "zsh":
		writeZsh(w, specs)
	case "fish":
		writeFish(w, specs)
	}
	return exitOK
}

// cmdSpec is a command (or a subcommand) as completion sees it.
type cmdSpec struct {
	name, summary string
	flags         []flagSpec
	subs          []cmdSpec // subcommands: keys list, keys show …
	args          []string  // fixed positional words (completion: the shells)
	fileArgs      bool      // takes FILE arguments (audit verify FILE...)
}

type flagSpec struct {
	name, usage string
	takesValue  bool
}

// commandSpecs reads the command table: a top-level row with the rows one
// word below it as subcommands. A leaf's flags come from its definition; a
// command with its own run function is run once with the probe set, so that
// parse hands over its flag set instead of parsing.
func commandSpecs() []cmdSpec {
	var specs []cmdSpec
	for _, c := range commands {
		if strings.Contains(c.name, " ") {
			continue
		}
		s := specOf(c)
		if c.name == "completion" {
			s.args, s.fileArgs = shells, false
		}
		for _, sub := range subcommands(c.name) {
			s.subs = append(s.subs, specOf(sub))
		}
		if run, ok := c.do.(func([]string) int); ok && len(s.flags) == 0 && len(s.subs) == 0 {
			s.subs = dispatched(c.name, run)
		}
		specs = append(specs, s)
	}
	return specs
}

// specOf is one row as completion sees it, named by its last word.
func specOf(c command) cmdSpec {
	s := cmdSpec{name: c.name[strings.LastIndex(c.name, " ")+1:], summary: c.summary}
	switch do := c.do.(type) {
	case *leaf:
		fs, _, _ := do.flagSet(c.name)
		s.flags = flagsOf(fs)
	case func([]string) int:
		if fs, takesArgs := probeCommand(do); fs != nil {
			s.flags, s.fileArgs = flagsOf(fs), takesArgs
		}
	}
	return s
}

// dispatched finds the subcommands of a command whose own run function
// dispatches them (pecet X SUB …, with no rows for them in the table): its
// usage names them as "pecet X SUB", and each is probed for its flags as a
// command is.
func dispatched(name string, run func([]string) int) []cmdSpec {
	var (
		subs []cmdSpec
		re   = regexp.MustCompile(`(?:^|[\s\x60|(])pecet ` + regexp.QuoteMeta(name) + ` ([a-z][a-z0-9-]*)([^\n\x60|]*)`)
	)
	for _, m := range re.FindAllStringSubmatch(capture(func() { run([]string{"--help"}) }), -1) {
		if slices.ContainsFunc(subs, func(s cmdSpec) bool { return s.name == m[1] }) {
			continue
		}
		sub := cmdSpec{name: m[1], fileArgs: takesFileArgs(m[2])}
		for _, args := range [][]string{{m[1], "--help"}, {m[1], "NAME", "--help"}} {
			if fs, takesArgs := probeCommand(run, args...); fs != nil {
				sub.flags, sub.fileArgs = flagsOf(fs), sub.fileArgs || takesArgs
				break
			}
		}
		subs = append(subs, sub)
	}
	return subs
}

// takesFileArgs: the rest of a usage line has a FILE (or FILE...) that is
// not the value of a flag ("--out FILE" is the flag's).
func takesFileArgs(rest string) bool {
	words := strings.Fields(strings.NewReplacer("[", " ", "]", " ").Replace(rest))
	for i, w := range words {
		if strings.TrimSuffix(w, "...") == "FILE" && (i == 0 || !strings.HasPrefix(words[i-1], "-")) {
			return true
		}
	}
	return false
}

// probeCommand runs a command with the probe set (with args, else
// --help) and returns the flag set it built (nil if it built none) and
// whether it takes arguments.
func probeCommand(run func([]string) int, args ...string) (*flag.FlagSet, bool) {
	var (
		got       *flag.FlagSet
		takesArgs bool
	)
	if len(args) == 0 {
		args = []string{"--help"}
	}
	probe = func(fs *flag.FlagSet, args bool) { got, takesArgs = fs, args }
	defer func() { probe = nil }()
	capture(func() { run(args) })
	return got, takesArgs
}

// capture runs f with stdout and stderr redirected into a buffer.
func capture(f func()) string {
	r, w, err := os.Pipe()
	if err != nil {
		return ""
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	var buf bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(&buf, r) })
	f()
	os.Stdout, os.Stderr = oldOut, oldErr
	w.Close()
	wg.Wait()
	r.Close()
	return buf.String()
}

func flagsOf(fs *flag.FlagSet) []flagSpec {
	var out []flagSpec
	fs.VisitAll(func(f *flag.Flag) {
		_, usage := flag.UnquoteUsage(f)
		b, isBool := f.Value.(interface{ IsBoolFlag() bool })
		out = append(out, flagSpec{name: f.Name, usage: usage, takesValue: !(isBool && b.IsBoolFlag())})
	})
	return out
}

// describe makes a one-line description safe inside single quotes in every
// shell and inside zsh's _arguments brackets.
func describe(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.NewReplacer("'", "’", "\\", "/", "[", "(", "]", ")", ":", " -", "`", "", "$", "").Replace(s)
	if r := []rune(s); len(r) > 70 {
		s = string(r[:69]) + "…"
	}
	return s
}

// globalWords are the global flags, as completion offers them before the
// command.
func globalWords() string {
	var out []string
	for _, g := range globalFlagNames {
		out = append(out, "--"+g)
	}
	return strings.Join(out, " ")
}

func names(specs []cmdSpec) string {
	var n []string
	for _, s := range specs {
		n = append(n, s.name)
	}
	return strings.Join(n, " ")
}

func flagWords(flags []flagSpec, valuesOnly bool) string {
	var n []string
	for _, f := range flags {
		if !valuesOnly || f.takesValue {
			n = append(n, "--"+f.name)
		}
	}
	return strings.Join(n, " ")
}

func writeBash(w io.Writer, specs []cmdSpec) {
	fmt.Fprint(w, `# bash completion for pecet; generated by 'pecet completion bash'.
_pecet() {
    COMPREPLY=()
    # Global flags before the command (each takes a value): skip them.
    local i=1
    while (( i < COMP_CWORD )) && [[ ${COMP_WORDS[i]} == -* ]]; do
        if [[ ${COMP_WORDS[i]} == *=* ]]; then (( i += 1 )); else (( i += 2 )); fi
    done
    if (( i > COMP_CWORD )); then
        return # a global flag's value: file names
    fi
    if (( i == COMP_CWORD )) && [[ ${COMP_WORDS[i]} == -* ]]; then
`)
	fmt.Fprintf(w, "        COMPREPLY=($(compgen -W '%s' -- \"${COMP_WORDS[i]}\"))\n        return\n    fi\n", globalWords())
	fmt.Fprint(w, `    if (( i > 1 )); then
        local -a rest=("${COMP_WORDS[@]:i}")
        local COMP_WORDS=(pecet "${rest[@]}") COMP_CWORD=$(( COMP_CWORD - i + 1 ))
    fi
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local words="" valueflags="" fixed=0
    if [[ $COMP_CWORD -eq 1 ]]; then
`)
	fmt.Fprintf(w, "        COMPREPLY=($(compgen -W '%s help' -- \"$cur\"))\n        return\n    fi\n", names(specs))
	fmt.Fprint(w, "    case \"${COMP_WORDS[1]}\" in\n")
	for _, s := range specs {
		fmt.Fprintf(w, "    %s)\n", s.name)
		switch {
		case len(s.args) > 0:
			fmt.Fprintf(w, "        [[ $COMP_CWORD -eq 2 ]] && words='%s'; fixed=1 ;;\n", strings.Join(s.args, " "))
		case len(s.subs) > 0:
			// A command with flags of its own (timestamp) offers them
			// beside its subcommands, and after any other second word.
			first := strings.TrimSpace(names(s.subs) + " " + flagWords(s.flags, false))
			fmt.Fprintf(w, "        if [[ $COMP_CWORD -eq 2 ]]; then\n            words='%s'; fixed=1\n        else\n            case \"${COMP_WORDS[2]}\" in\n", first)
			for _, sub := range s.subs {
				fmt.Fprintf(w, "            %s) words='%s'; valueflags='%s' ;;\n", sub.name, flagWords(sub.flags, false), flagWords(sub.flags, true))
			}
			if len(s.flags) > 0 {
				fmt.Fprintf(w, "            *) words='%s'; valueflags='%s' ;;\n", flagWords(s.flags, false), flagWords(s.flags, true))
			}
			fmt.Fprint(w, "            esac\n        fi ;;\n")
		default:
			fmt.Fprintf(w, "        words='%s'; valueflags='%s' ;;\n", flagWords(s.flags, false), flagWords(s.flags, true))
		}
	}
	fmt.Fprint(w, `    esac
    # After a flag that takes a value, and for anything not a flag, fall
    # back to file names (complete -o default).
    if [[ -n $prev && " $valueflags " == *" $prev "* ]]; then
        return
    fi
    if [[ $fixed -eq 1 || $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}
complete -o default -F _pecet pecet
`)
}

func zshArgs(w io.Writer, indent string, flags []flagSpec) {
	fmt.Fprintf(w, "%s_arguments -s \\\n", indent)
	for _, f := range flags {
		spec := fmt.Sprintf("--%s[%s]", f.name, describe(f.usage))
		if f.takesValue {
			spec += ":" + f.name + ":_files"
		}
		fmt.Fprintf(w, "%s    '%s' \\\n", indent, spec)
	}
	fmt.Fprintf(w, "%s    '*:file:_files'\n", indent)
}

func writeZsh(w io.Writer, specs []cmdSpec) {
	fmt.Fprint(w, "#compdef pecet\n# zsh completion for pecet; generated by 'pecet completion zsh'.\n_pecet() {\n    local -a cmds\n    cmds=(\n")
	for _, s := range specs {
		fmt.Fprintf(w, "        '%s:%s'\n", s.name, describe(s.summary))
	}
	fmt.Fprint(w, `    )
    # Global flags before the command (each takes a value): skip them.
    local i=2
    while (( i < CURRENT )) && [[ $words[i] == -* ]]; do
        if [[ $words[i] == *=* ]]; then (( i += 1 )); else (( i += 2 )); fi
    done
    if (( i > CURRENT )); then
        _files # a global flag's value
        return
    fi
    if (( i == CURRENT )) && [[ $words[CURRENT] == -* ]]; then
`+"        compadd -- "+globalWords()+`
        return
    fi
    if (( i > 2 )); then
        words=(pecet "${(@)words[i,-1]}")
        (( CURRENT -= i - 2 ))
    fi
    if (( CURRENT == 2 )); then
        _describe -t commands 'pecet command' cmds
        return
    fi
    local cmd=$words[2]
    shift words
    (( CURRENT-- ))
    case $cmd in
`)
	for _, s := range specs {
		fmt.Fprintf(w, "    %s)\n", s.name)
		switch {
		case len(s.args) > 0:
			fmt.Fprintf(w, "        (( CURRENT == 2 )) && _values 'argument' %s\n        ;;\n", strings.Join(s.args, " "))
		case len(s.subs) > 0:
			cond := "(( CURRENT == 2 ))"
			if len(s.flags) > 0 {
				// timestamp: its own flags where a flag is typed.
				cond += " && [[ $words[2] != -* ]]"
			}
			fmt.Fprintf(w, "        if %s; then\n            local -a subs\n            subs=(%s)\n            _describe -t commands '%s subcommand' subs\n            return\n        fi\n", cond, names(s.subs), s.name)
			fmt.Fprint(w, "        case $words[2] in\n")
			for _, sub := range s.subs {
				fmt.Fprintf(w, "        %s)\n            shift words\n            (( CURRENT-- ))\n", sub.name)
				zshArgs(w, "            ", sub.flags)
				fmt.Fprint(w, "            ;;\n")
			}
			if len(s.flags) > 0 {
				fmt.Fprint(w, "        *)\n")
				zshArgs(w, "            ", s.flags)
				fmt.Fprint(w, "            ;;\n")
			}
			fmt.Fprint(w, "        esac\n        ;;\n")
		default:
			zshArgs(w, "        ", s.flags)
			fmt.Fprint(w, "        ;;\n")
		}
	}
	fmt.Fprint(w, `    esac
}
if [[ $funcstack[1] == _pecet ]]; then
    _pecet "$@"
else
    compdef _pecet pecet
fi
`)
}

func fishFlags(w io.Writer, cond string, flags []flagSpec) {
	for _, f := range flags {
		req := ""
		if f.takesValue {
			req = " -r -F"
		}
		fmt.Fprintf(w, "complete -c pecet -n '%s' -l %s%s -d '%s'\n", cond, f.name, req, describe(f.usage))
	}
}

func writeFish(w io.Writer, specs []cmdSpec) {
	fmt.Fprint(w, `# fish completion for pecet; generated by 'pecet completion fish'.
# __pecet_words: the words after pecet and its global flags (before the
# command; each takes a value).
function __pecet_words
    set -l words (commandline -opc)
    set -e words[1]
    while test (count $words) -gt 0; and string match -q -- '-*' $words[1]
        if string match -q -- '*=*' $words[1]; or test (count $words) -lt 2
            set -e words[1]
        else
            set -e words[1..2]
        end
    end
    string join \n -- $words
end
# __pecet_at N: the command line so far has N words (pecet counts as one).
function __pecet_at
    test (math (count (__pecet_words)) + 1) -eq $argv[1]
end
# __pecet_using CMD [SUB]: the words after pecet start with these.
function __pecet_using
    set -l words (__pecet_words)
    test (count $words) -ge (count $argv); or return 1
    for i in (seq (count $argv))
        test "$words[$i]" = "$argv[$i]"; or return 1
    end
end
complete -c pecet -f
`)
	for _, g := range globalFlagNames {
		fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 1' -l %s -r -F -d 'global flag, before the command'\n", g)
	}
	for _, s := range specs {
		fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 1' -a %s -d '%s'\n", s.name, describe(s.summary))
	}
	for _, s := range specs {
		switch {
		case len(s.args) > 0:
			fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 2; and __pecet_using %s' -a '%s'\n", s.name, strings.Join(s.args, " "))
		case len(s.subs) > 0:
			fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 2; and __pecet_using %s' -a '%s'\n", s.name, names(s.subs))
			parent := "__pecet_using " + s.name
			for _, sub := range s.subs {
				parent += "; and not __pecet_using " + s.name + " " + sub.name
			}
			fishFlags(w, parent, s.flags)
			for _, sub := range s.subs {
				cond := "__pecet_using " + s.name + " " + sub.name
				fishFlags(w, cond, sub.flags)
				if sub.fileArgs {
					// complete -f above turned file names off for pecet.
					fmt.Fprintf(w, "complete -c pecet -n '%s' -F\n", cond)
				}
			}
		default:
			fishFlags(w, "__pecet_using "+s.name, s.flags)
		}
	}
}
