package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pecet-hsm/pecet/internal/testtool"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var code int
	out := capture(func() { code = runCompletion([]string{shell}) })
	if code != exitOK {
		t.Fatalf("pecet completion %s: exit %d\n%s", shell, code, out)
	}
	return out
}

// TestCompletionCoversCommands: every command, subcommand and flag that the
// code defines appears in every script.
func TestCompletionCoversCommands(t *testing.T) {
	specs := commandSpecs()
	// Discovery against the rows of the command table: a subcommand
	// missing here is one no shell would offer.
	for _, want := range []struct {
		cmd, subs string
		fileArgs  string // the subcommands that take FILE arguments
	}{
		{"keys", "list show create rotate csr import-cert set-primary disable enable destroy requests approve", ""},
		{"audit", "verify", "verify"},
		{"chain", "verify", ""},
		{"policy", "list show", ""},
		{"timestamp", "verify", ""},
	} {
		s := specFor(t, specs, want.cmd)
		if got := names(s.subs); got != want.subs {
			t.Errorf("%s subcommands discovered: %q, want %q", want.cmd, got, want.subs)
		}
		var files []string
		for _, sub := range s.subs {
			if sub.fileArgs {
				files = append(files, sub.name)
			}
		}
		if got := strings.Join(files, " "); got != want.fileArgs {
			t.Errorf("%s subcommands with FILE arguments: %q, want %q", want.cmd, got, want.fileArgs)
		}
	}
	if got := flagWords(specFor(t, specs, "audit").subs[0].flags, false); got != "--cert --json --max-age --unsigned" {
		t.Errorf("audit verify flags: %q, want --cert --json --max-age --unsigned", got)
	}
	// Every command has flags or subcommands with flags, except the
	// completion command itself.
	for _, s := range specs {
		if s.name == "completion" {
			continue
		}
		if len(s.flags) == 0 && len(s.subs) == 0 {
			t.Errorf("command %s: neither flags nor subcommands discovered", s.name)
		}
		for _, sub := range s.subs {
			if len(sub.flags) == 0 {
				t.Errorf("%s %s: no flags discovered", s.name, sub.name)
			}
		}
	}
	for _, shell := range shells {
		script := completionScript(t, shell)
		for _, c := range commands {
			if !strings.Contains(script, c.name[strings.LastIndex(c.name, " ")+1:]) {
				t.Errorf("%s script lacks command %s", shell, c.name)
			}
		}
		for _, s := range specs {
			flags := s.flags
			for _, sub := range s.subs {
				if !strings.Contains(script, sub.name) {
					t.Errorf("%s script lacks subcommand %s %s", shell, s.name, sub.name)
				}
				flags = append(flags, sub.flags...)
			}
			for _, f := range flags {
				want := "--" + f.name
				if shell == "fish" {
					want = "-l " + f.name
				}
				if !strings.Contains(script, want) {
					t.Errorf("%s script lacks %s of %s", shell, want, s.name)
				}
			}
		}
	}
}

func specFor(t *testing.T, specs []cmdSpec, name string) cmdSpec {
	t.Helper()
	for _, s := range specs {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("command %s not in the completion specs", name)
	return cmdSpec{}
}

// keysSubs: what "pecet keys " should complete to, from the discovered
// specs (TestCompletionCoversCommands checks those against the dispatcher).
func keysSubs(t *testing.T, sorted bool) string {
	t.Helper()
	var subs []string
	for _, s := range specFor(t, commandSpecs(), "keys").subs {
		subs = append(subs, s.name)
	}
	if len(subs) == 0 {
		t.Fatal("no keys subcommands discovered")
	}
	if sorted {
		slices.Sort(subs)
	}
	return strings.Join(subs, " ")
}

// TestCompletionSyntax: each shell parses its script (bash -n, zsh -n,
// fish -n); a shell that is not installed skips its case locally and fails
// it in CI (.ci/run installs zsh and fish).
func TestCompletionSyntax(t *testing.T) {
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			path := testtool.Require(t, shell)
			f := filepath.Join(t.TempDir(), "pecet."+shell)
			if err := os.WriteFile(f, []byte(completionScript(t, shell)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}

// TestBashCompletes runs the bash function the way readline does.
func TestBashCompletes(t *testing.T) {
	script := filepath.Join(t.TempDir(), "pecet.bash")
	if err := os.WriteFile(script, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		words []string // the command line; the last word is being completed
		want  string
	}{
		{[]string{"pecet", "si"}, "sign"},
		{[]string{"pecet", "ver"}, "verify version"},
		{[]string{"pecet", "sign", "--ke"}, "--key --key-file"},
		{[]string{"pecet", "keys", ""}, keysSubs(t, false)},
		{[]string{"pecet", "keys", "show", "--al"}, "--alias"},
		{[]string{"pecet", "keys", "set-"}, "set-primary"},
		{[]string{"pecet", "keys", "destroy", "--ver"}, "--version"},
		{[]string{"pecet", "audit", ""}, "verify"},
		{[]string{"pecet", "audit", "verify", "--j"}, "--json"},
		{[]string{"pecet", "audit", "verify", ""}, ""}, // log files: left to readline
		{[]string{"pecet", "completion", "f"}, "fish"},
		{[]string{"pecet", "sign", "--in", ""}, ""}, // a file name: left to readline
		// Global flags before the command.
		{[]string{"pecet", "--se"}, "--server"},
		{[]string{"pecet", "--server", ""}, ""}, // its value: left to readline
		{[]string{"pecet", "--server", "h:1", "si"}, "sign"},
		{[]string{"pecet", "--as", "officer", "--timeout=5s", "keys", "show", "--al"}, "--alias"},
		{[]string{"pecet", "--dev-dir", "d", "keys", ""}, keysSubs(t, false)},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.words, " "), func(t *testing.T) {
			quoted := make([]string, len(c.words))
			for i, w := range c.words {
				quoted[i] = "'" + w + "'"
			}
			prog := "complete() { :; }; source " + script + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
				strconv.Itoa(len(c.words)-1) + "; _pecet; echo \"${COMPREPLY[*]}\""
			out, err := exec.Command("bash", "--norc", "-c", prog).CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Fatalf("completions %q, want %q", got, c.want)
			}
		})
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"tcsh"}, {"bash", "zsh"}} {
		var code int
		capture(func() { code = runCompletion(args) })
		if code != exitUsage {
			t.Errorf("completion %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestFishCompletes asks fish itself (complete -C): skipped locally without
// fish, failed in CI.
func TestFishCompletes(t *testing.T) {
	testtool.Require(t, "fish")
	script := filepath.Join(t.TempDir(), "pecet.fish")
	if err := os.WriteFile(script, []byte(completionScript(t, "fish")), 0o644); err != nil {
		t.Fatal(err)
	}
	// A folder with one file, so file-name completion has a known answer.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "audit.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ line, want string }{
		{"pecet keys ", keysSubs(t, true)},
		{"pecet keys show --al", "--alias"},
		{"pecet keys approve --j", "--json"},
		{"pecet audit ", "verify"},
		{"pecet audit verify --j", "--json"},
		{"pecet audit verify ", "audit.log"},
		{"pecet keys list ", ""}, // no file names where none are taken
		{"pecet completion ", "bash fish zsh"},
		{"pecet sign --pe", "--pem"},
		{"pecet --ser", "--server"},
		{"pecet --server h:1 si", "sign"},
		{"pecet --as officer --timeout=5s keys show --al", "--alias"},
		{"pecet --dev-dir d keys ", keysSubs(t, true)},
	}
	for _, c := range cases {
		cmd := exec.Command("fish", "--no-config", "-c", "source "+script+"; complete -C '"+c.line+"'")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish: %v\n%s", err, out)
		}
		var got []string
		for line := range strings.Lines(string(out)) {
			word, _, _ := strings.Cut(strings.TrimSpace(line), "\t")
			got = append(got, word)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%q completes to %q, want %q\n%s", c.line, got, c.want, out)
		}
	}
}
