package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/pecet-hsm/pecet/internal/daemon"
	"github.com/pecet-hsm/pecet/internal/devmode"
)

const reloadUsage = `pecetd reload: make a running pecetd re-read its configuration (SIGHUP)

Usage:
  pecetd reload --pid PID
  pecetd reload --pid-file FILE     (the file pecetd --pid-file wrote)
  pecetd reload [--dev-dir DIR]     (pecetd --dev: DIR/pecetd.addr names it)

The outcome is in pecetd's log, its audit log and the metric
pecet_config_reload_total{result}: a config that fails validation is
refused and the one in force stays.

Exit status: 0 when the signal was sent, 1 when no running pecetd was
found, 2 for a usage error.

Flags:
`

func runReload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pecetd reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), reloadUsage)
		fs.PrintDefaults()
	}
	pid := fs.Int("pid", 0, "`PID` of the running pecetd")
	pidFile := fs.String("pid-file", "", "`FILE` with the process id (written by pecetd --pid-file)")
	devDir := fs.String("dev-dir", devmode.DefaultDir, "dev folder `DIR` whose pecetd.addr names the running pecetd --dev")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || (*pid != 0 && *pidFile != "") {
		fmt.Fprintln(stderr, "pecetd reload: give at most one of --pid and --pid-file (see pecetd reload --help)")
		return 2
	}
	p, src, err := findPID(*pid, *pidFile, *devDir)
	if err == nil {
		err = checkPecetd(p)
	}
	if err == nil {
		err = syscall.Kill(p, syscall.SIGHUP)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pecetd reload: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "sent SIGHUP to pecetd (pid %d, from %s); the outcome is in its log and pecet_config_reload_total\n", p, src)
	return 0
}

// findPID takes the pid from the flag, the pid file or the dev folder's
// endpoints file, in that order.
func findPID(pid int, pidFile, devDir string) (int, string, error) {
	switch {
	case pid != 0:
		return pid, "--pid", nil
	case pidFile != "":
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return 0, "", fmt.Errorf("pid file: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n <= 0 {
			return 0, "", fmt.Errorf("pid file %s holds no process id", pidFile)
		}
		return n, pidFile, nil
	}
	f := filepath.Join(devDir, daemon.AddrFile)
	b, err := os.ReadFile(f)
	if err != nil {
		return 0, "", fmt.Errorf("no running pecetd --dev in %s (%w); give --pid or --pid-file", devDir, err)
	}
	var ep daemon.Endpoints
	if err := json.Unmarshal(b, &ep); err != nil || ep.PID <= 0 {
		return 0, "", fmt.Errorf("%s names no process id (a pecetd from before reload existed?): give --pid", f)
	}
	return ep.PID, f, nil
}

// checkPecetd refuses to signal a process that is not pecetd: a stale pid
// file may name another program now, and SIGHUP ends most of them.
func checkPecetd(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("invalid pid %d", pid)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no process %d: pecetd is not running", pid)
	}
	if err != nil {
		return nil // no /proc here: rely on the pid as given
	}
	if name := strings.TrimSpace(string(comm)); !strings.HasPrefix(name, "pecetd") {
		return fmt.Errorf("process %d is %q, not pecetd (a stale pid file?)", pid, name)
	}
	return nil
}
