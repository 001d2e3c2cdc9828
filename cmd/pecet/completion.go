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
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(os.Stderr, completionUsage)
		return exitOK
	}
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

// commandSpecs reads the commands table: each command is run once with the
// probe set, so parse hands over its flag set instead of parsing. A command
// that dispatches to subcommands prints its usage instead; the "pecet CMD
// SUB" in it name the subcommands, which are probed the same way.
func commandSpecs() []cmdSpec {
	var specs []cmdSpec
	for _, c := range commands {
		s := cmdSpec{name: c.name, summary: c.summary}
		if c.name == "completion" {
			s.args = shells
			specs = append(specs, s)
			continue
		}
		fs, usage := probeCommand(c.run, []string{"--help"})
		if fs != nil {
			s.flags = flagsOf(fs)
		} else {
			for _, sub := range subcommandsIn(usage, c.name) {
				sfs, _ := probeCommand(c.run, []string{sub.name})
				if sfs == nil {
					// A subcommand that takes a positional argument
					// before its flags (policy show NAME).
					sfs, _ = probeCommand(c.run, []string{sub.name, "NAME"})
				}
				ss := cmdSpec{name: sub.name, fileArgs: sub.fileArgs}
				if sfs != nil {
					ss.flags = flagsOf(sfs)
				}
				s.subs = append(s.subs, ss)
			}
		}
		specs = append(specs, s)
	}
	return specs
}

// probeCommand runs a command with the probe set and returns the flag set
// it built, or nil and whatever it printed (a subcommand dispatcher's usage).
func probeCommand(run func([]string) int, args []string) (*flag.FlagSet, string) {
	var got *flag.FlagSet
	probe = func(fs *flag.FlagSet) { got = fs }
	defer func() { probe = nil }()
	out := capture(func() { run(args) })
	return got, out
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

// subcommand is a subcommand named in a dispatcher's usage.
type subcommand struct {
	name     string
	fileArgs bool // a usage line gives it a FILE argument of its own
}

func subcommandsIn(usage, cmd string) []subcommand {
	// "pecet keys list", "`pecet chain verify --cert FILE`", "pecet policy
	// list | pecet policy show NAME": lower-case words after the command;
	// the rest of the line shows whether FILE arguments follow.
	re := regexp.MustCompile(`(?:^|[\s\x60|(])pecet ` + regexp.QuoteMeta(cmd) + ` ([a-z][a-z0-9-]*)([^\n\x60|]*)`)
	var subs []subcommand
	for _, m := range re.FindAllStringSubmatch(usage, -1) {
		i := slices.IndexFunc(subs, func(s subcommand) bool { return s.name == m[1] })
		if i < 0 {
			subs = append(subs, subcommand{name: m[1]})
			i = len(subs) - 1
		}
		subs[i].fileArgs = subs[i].fileArgs || takesFileArgs(m[2])
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
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local words="" valueflags="" fixed=0
    COMPREPLY=()
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
			fmt.Fprintf(w, "        if [[ $COMP_CWORD -eq 2 ]]; then\n            words='%s'; fixed=1\n        else\n            case \"${COMP_WORDS[2]}\" in\n", names(s.subs))
			for _, sub := range s.subs {
				fmt.Fprintf(w, "            %s) words='%s'; valueflags='%s' ;;\n", sub.name, flagWords(sub.flags, false), flagWords(sub.flags, true))
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
			fmt.Fprintf(w, "        if (( CURRENT == 2 )); then\n            local -a subs\n            subs=(%s)\n            _describe -t commands '%s subcommand' subs\n            return\n        fi\n", names(s.subs), s.name)
			fmt.Fprint(w, "        local sub=$words[2]\n        shift words\n        (( CURRENT-- ))\n        case $sub in\n")
			for _, sub := range s.subs {
				fmt.Fprintf(w, "        %s)\n", sub.name)
				zshArgs(w, "            ", sub.flags)
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
# __pecet_at N: the command line so far has N words.
function __pecet_at
    test (count (commandline -opc)) -eq $argv[1]
end
# __pecet_using CMD [SUB]: the words after pecet start with these.
function __pecet_using
    set -l words (commandline -opc)
    set -e words[1]
    test (count $words) -ge (count $argv); or return 1
    for i in (seq (count $argv))
        test "$words[$i]" = "$argv[$i]"; or return 1
    end
end
complete -c pecet -f
`)
	for _, s := range specs {
		fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 1' -a %s -d '%s'\n", s.name, describe(s.summary))
	}
	for _, s := range specs {
		switch {
		case len(s.args) > 0:
			fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 2; and __pecet_using %s' -a '%s'\n", s.name, strings.Join(s.args, " "))
		case len(s.subs) > 0:
			fmt.Fprintf(w, "complete -c pecet -n '__pecet_at 2; and __pecet_using %s' -a '%s'\n", s.name, names(s.subs))
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
