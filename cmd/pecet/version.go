package main

import (
	"flag"
	"fmt"

	"github.com/pecet-hsm/pecet/internal/version"
)

func runVersion(args []string) int {
	fs := flag.NewFlagSet("pecet version", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "machine-readable JSON output")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pecet version [--json]\n\nPrints the version (git describe, or the module version) and the commit.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code := parse(fs, args); code >= 0 {
		return code
	}
	v := version.Get()
	if *asJSON {
		printJSON(v)
		return exitOK
	}
	fmt.Println("pecet", v)
	return exitOK
}
