package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/pecet-hsm/pecet/client"
)

// command is a row of the command table (main.go): its path ("sign",
// "keys rotate"), its summary and what runs it, one of
//   - *leaf: a command the shared code drives (flags, required flags,
//     dialing, error mapping; see runLeaf);
//   - func(args []string) int: a command that parses its own arguments
//     (bench, version, completion, audit verify, and sign and timestamp,
//     whose runSign and runTimestamp use runCall for dialing and errors);
//     if it builds its flags with newFlags and parse, completion finds
//     them, and the subcommands its usage names as "pecet X SUB";
//   - nil: a group ("keys"), whose rows are the ones named "keys …".
//
// help and completion read the same table, so they cannot drift from it.
type command struct {
	name    string
	summary string
	do      any
}

// leaf is a command driven by the shared code: runLeaf builds the flag set
// (the connection flags, then define's), checks the required flags, takes the
// positional argument, and maps the result of the call.
type leaf struct {
	synopsis string   // after "pecet PATH " in the usage line
	help     string   // more --help text after the usage line
	role     string   // the dev role certificate it uses by default (--as)
	certFlag string   // the TLS client certificate flag; "" is "cert"
	required []string // flags that must be given (their value other than the default)
	// arg names one positional argument ("ID"), which may stand before or
	// after the flags; argMissing is the usage error without it.
	arg, argMissing string
	// define declares the command's flags and returns what runs once they
	// are parsed and checked.
	define func(fs *flag.FlagSet) func(x *call) (int, error)
}

// call is one run of a leaf: what its function needs besides its flags.
type call struct {
	name string // the command path, "keys rotate"
	c    *conn
	arg  string // the positional argument, when the leaf takes one
	cc   *client.Conn
	ctx  context.Context
	done func()
}

// dial connects to pecetd (once per call); runLeaf closes the connection.
func (x *call) dial() error {
	if x.cc != nil {
		return nil
	}
	cc, ctx, done, err := x.c.dial()
	if err != nil {
		return err
	}
	x.cc, x.ctx, x.done = cc, ctx, done
	return nil
}

// query dials, makes one call and prints its answer: protojson with --json,
// else as text prints it.
func query[T proto.Message](x *call, do func(cc *client.Conn, ctx context.Context) (T, error), text func(T)) (int, error) {
	if err := x.dial(); err != nil {
		return 0, err
	}
	resp, err := do(x.cc, x.ctx)
	if err != nil {
		return 0, err
	}
	if x.c.json {
		printProto(resp)
	} else {
		text(resp)
	}
	return exitOK, nil
}

// usageError is a usage error of a leaf's function: exit 2, not 4.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usage error for a leaf's function to return.
func usagef(format string, a ...any) (int, error) {
	return exitUsage, &usageError{msg: fmt.Sprintf(format, a...)}
}

// flagSet builds the leaf's flags for the command path name.
func (l *leaf) flagSet(name string) (*flag.FlagSet, *conn, func(*call) (int, error)) {
	certFlag := l.certFlag
	if certFlag == "" {
		certFlag = "cert"
	}
	synopsis := name
	if l.synopsis != "" {
		synopsis += " " + l.synopsis
	}
	if l.help != "" {
		synopsis += "\n\n" + l.help
	}
	fs, c := newFlagsCert(name, synopsis, l.role, certFlag)
	return fs, c, l.define(fs)
}

// runLeaf runs a leaf: parse, required flags, the positional argument, then
// its function; a usage error exits 2, any other error is a service error
// (exit 4) printed as fail prints it.
func runLeaf(name string, l *leaf, args []string) int {
	fs, c, run := l.flagSet(name)
	x := &call{name: name, c: c}
	if l.arg != "" {
		x.arg, args = positional(fs, args)
	}
	if code := parse(fs, args); code >= 0 {
		return code
	}
	for _, r := range l.required {
		if f := fs.Lookup(r); f.Value.String() == f.DefValue {
			return usageErr(fs, "--%s is required", r)
		}
	}
	if l.arg != "" && x.arg == "" {
		return usageErr(fs, "%s", l.argMissing)
	}
	return runCall(fs, x, run)
}

// runCall runs a command's call-and-print function after its flags are
// checked: it closes the connection the function dialed and maps its error
// (a usage error exits 2, any other is a service error, exit 4, printed as
// fail prints it). Commands with their own run function use it too (sign,
// timestamp).
func runCall(fs *flag.FlagSet, x *call, run func(x *call) (int, error)) int {
	code, err := run(x)
	if x.done != nil {
		x.done()
	}
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		return usageErr(fs, "%s", ue.msg)
	case err != nil:
		return fail(x.name, err)
	}
	return code
}

// positional takes the first argument that is neither a flag nor a flag's
// value out of args, so that it may stand before or after the flags.
func positional(fs *flag.FlagSet, args []string) (string, []string) {
	var rest []string
	arg := ""
	for _, a := range args {
		if arg == "" && !strings.HasPrefix(a, "-") && (len(rest) == 0 || !isFlagTakingValue(fs, rest[len(rest)-1])) {
			arg = a
			continue
		}
		rest = append(rest, a)
	}
	return arg, rest
}

// isFlagTakingValue: whether prev is a flag (not a flag's value that
// happens to spell a flag's name, as "ca" in --ca ca) taking the next
// argument.
func isFlagTakingValue(fs *flag.FlagSet, prev string) bool {
	return strings.HasPrefix(prev, "-") && needsValue(fs, prev)
}

// needsValue: whether a flag argument like "--as" takes the next argument.
func needsValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// lookup finds the row for the leading words of args: the longest path that
// matches ("timestamp verify" before "timestamp"), and the arguments after it.
func lookup(args []string) (command, []string, bool) {
	best, n := command{}, 0
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(words) > n && len(words) <= len(args) && strings.Join(args[:len(words)], " ") == c.name {
			best, n = c, len(words)
		}
	}
	return best, args[min(n, len(args)):], n > 0
}

// subcommands returns the rows one word below the path name, in table order.
func subcommands(name string) []command {
	var out []command
	for _, c := range commands {
		if rest, ok := strings.CutPrefix(c.name, name+" "); ok && !strings.Contains(rest, " ") {
			out = append(out, c)
		}
	}
	return out
}

// groupNotes are the paragraphs a group's usage adds after its rows.
var groupNotes = map[string]string{
	"keys": `All but list and show are for officers (the default --as officer). Where
config asks for dual control, create, rotate, set-primary and destroy only
make a request and print its id; another officer runs 'pecet keys approve ID'.
`,
}

// groupUsage is the usage of a group, from its rows' synopses.
func groupUsage(name string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, c := range subcommands(name) {
		line := "pecet " + c.name
		if l, ok := c.do.(*leaf); ok && l.synopsis != "" {
			line += " " + l.synopsis
		} else if !ok {
			line += " …   (" + c.summary + ")"
		}
		fmt.Fprintf(&b, "  %s\n", line)
	}
	if n := groupNotes[name]; n != "" {
		b.WriteString("\n" + n)
	}
	fmt.Fprintf(&b, "\nRun 'pecet %s SUBCOMMAND --help' for flags.\n", name)
	return b.String()
}

// runCommand runs the row for args (the words after pecet and its global
// flags).
func runCommand(args []string) int {
	row, rest, ok := lookup(args)
	if !ok {
		fmt.Fprintf(os.Stderr, "pecet: unknown command %q\n\n", args[0])
		usage()
		return exitUsage
	}
	switch do := row.do.(type) {
	case *leaf:
		return runLeaf(row.name, do, rest)
	case func([]string) int:
		return do(rest)
	}
	// A group: its usage, on request or when no row of it matched.
	switch {
	case len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help"):
		fmt.Fprint(os.Stderr, groupUsage(row.name))
		return exitOK
	case len(rest) > 0:
		fmt.Fprintf(os.Stderr, "pecet %s: unknown subcommand %q\n%s", row.name, rest[0], groupUsage(row.name))
	default:
		fmt.Fprint(os.Stderr, groupUsage(row.name))
	}
	return exitUsage
}
