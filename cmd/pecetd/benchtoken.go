package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devmode"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

//nolint:gosec // a usage text that names the token, no credential
const benchTokenUsage = `pecetd bench-token: the raw token rate of one key, for pecet bench --baseline

Usage:
  pecetd bench-token --key ALIAS --purpose SIGN|TIMESTAMP|DECRYPT [--concurrency N] [--config FILE | --dev-dir DIR]

Opens the token the way pecetd does (FILE's token section, or the dev
folder's pecet.yaml) and, for each duration read from stdin (one a line,
e.g. 5s), calls the key with direct PKCS#11 on N sessions of its own for
that long and writes the rate (operations per second) as one line to
stdout. A DECRYPT key is measured with the raw RSA private-key operation
(CKM_RSA_X_509). It ends at the end of stdin. pecet bench --baseline runs
it, so that the pecet client does not link PKCS#11 (docs/architecture.md).

Exit status: 0 at the end of stdin, 1 when the token, the key or a
measurement fails, 2 for a usage error.

Flags:
`

// maxBenchTokenLine bounds a line of stdin: a duration is a few bytes.
const maxBenchTokenLine = 64

func runBenchToken(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pecetd bench-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchTokenUsage)
		fs.PrintDefaults()
	}
	cfgPath := fs.String("config", "", "pecetd config `file` whose token to open (default: the dev folder's pecet.yaml)")
	devDir := fs.String("dev-dir", devmode.DefaultDir, "dev folder `DIR`, without --config")
	alias := fs.String("key", "", "key `alias`")
	purpose := fs.String("purpose", "", "the key's purpose: SIGN, TIMESTAMP or DECRYPT")
	conc := fs.Int("concurrency", 16, "sessions used at once")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	p := keystore.Purpose(strings.ToUpper(*purpose))
	if *alias == "" || fs.NArg() != 0 || (p != keystore.PurposeSign && p != keystore.PurposeTimestamp && p != keystore.PurposeDecrypt) {
		fmt.Fprintln(stderr, "pecetd bench-token: --key and --purpose SIGN|TIMESTAMP|DECRYPT are needed, and no arguments")
		return 2
	}
	measure, closeKS, err := openBaseline(*devDir, *cfgPath, *alias, p, *conc)
	if err != nil {
		fmt.Fprintf(stderr, "pecetd bench-token: %v\n", err)
		return 1
	}
	defer closeKS()
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, maxBenchTokenLine), maxBenchTokenLine)
	for sc.Scan() {
		d, err := time.ParseDuration(strings.TrimSpace(sc.Text()))
		if err != nil {
			fmt.Fprintf(stderr, "pecetd bench-token: %v\n", err)
			return 2
		}
		rate, err := measure(d)
		if err != nil {
			fmt.Fprintf(stderr, "pecetd bench-token: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%g\n", rate)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(stderr, "pecetd bench-token: reading stdin: %v\n", err)
		return 2
	}
	return 0
}

// openBaseline opens the token the way pecetd does (its config, or the dev
// folder's) and returns a measurement of the raw rate of the same key with
// direct PKCS#11 calls on sessions of its own: the physical limit pecetd is
// compared to.
func openBaseline(devDir, cfgPath, alias string, p keystore.Purpose, conc int) (func(time.Duration) (float64, error), func(), error) {
	if cfgPath == "" {
		cfgPath = filepath.Join(devDir, "pecet.yaml")
		if _, err := softhsm.EnsureEnv(devDir); err != nil {
			return nil, nil, err
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, nil, err
	}
	if !filepath.IsAbs(cfg.Token.PINFile) && cfg.Token.PINFile != "" {
		cfg.Token.PINFile = filepath.Join(filepath.Dir(cfgPath), cfg.Token.PINFile)
	}
	pin, err := cfg.Token.PIN()
	if err != nil {
		return nil, nil, err
	}
	ctx := context.Background()
	ks, err := keystore.Open(ctx, keystore.Config{ModulePath: cfg.Token.Module, TokenLabel: cfg.Token.Label, TokenSerial: cfg.Token.Serial, Slot: cfg.Token.Slot, PIN: pin, MaxSessions: conc})
	if err != nil {
		return nil, nil, err
	}
	closeKS := func() { ks.Close() }
	if p == keystore.PurposeDecrypt {
		k, err := ks.Decrypter(ctx, alias, 0)
		if err != nil {
			closeKS()
			return nil, nil, err
		}
		return func(d time.Duration) (float64, error) { return k.Baseline(ctx, conc, d) }, closeKS, nil
	}
	k, err := ks.Signer(ctx, alias, 0, p)
	if err != nil {
		closeKS()
		return nil, nil, err
	}
	return func(d time.Duration) (float64, error) { return k.Baseline(ctx, conc, d) }, closeKS, nil
}
