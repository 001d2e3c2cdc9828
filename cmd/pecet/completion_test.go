package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	var keys *cmdSpec
	for i, s := range specs {
		if s.name == "keys" {
			keys = &specs[i]
		}
	}
	if keys == nil || names(keys.subs) != "list show" {
		t.Fatalf("keys subcommands not discovered: %+v", keys)
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
			if !strings.Contains(script, c.name) {
				t.Errorf("%s script lacks command %s", shell, c.name)
			}
		}
		for _, s := range specs {
			for _, f := range s.flags {
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

// TestCompletionSyntax: each shell parses its script (bash -n, zsh -n,
// fish -n); shells that are not installed are skipped with a log line.
func TestCompletionSyntax(t *testing.T) {
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			path, err := exec.LookPath(shell)
			if err != nil {
				if shell == "bash" {
					t.Fatal("bash is required")
				}
				t.Skipf("%s not installed: syntax not checked", shell)
			}
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
		{[]string{"pecet", "keys", ""}, "list show"},
		{[]string{"pecet", "keys", "show", "--al"}, "--alias"},
		{[]string{"pecet", "completion", "f"}, "fish"},
		{[]string{"pecet", "sign", "--in", ""}, ""}, // a file name: left to readline
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

// TestFishCompletes asks fish itself (complete -C) when it is installed.
func TestFishCompletes(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not installed: fish completions not exercised")
	}
	script := filepath.Join(t.TempDir(), "pecet.fish")
	if err := os.WriteFile(script, []byte(completionScript(t, "fish")), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ line, want string }{
		{"pecet keys ", "list show"},
		{"pecet keys show --al", "--alias"},
		{"pecet completion ", "bash fish zsh"},
		{"pecet sign --pe", "--pem"},
	}
	for _, c := range cases {
		out, err := exec.Command("fish", "--no-config", "-c", "source "+script+"; complete -C '"+c.line+"'").CombinedOutput()
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
