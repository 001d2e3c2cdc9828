// Command perf is the perf and soak tooling behind docs/performance.md and
// docs/reliability.md (the `pecet bench` CLI apart; its load engine and the
// soak's are internal/perf/loadgen and internal/perf/soak). It has no
// dependencies beyond the repository's and the standard library.
//
//	go run ./scripts/perf eckey --dev-dir DIR
//	    makes a P-256 SIGN key "bench-ec" on the dev token, certified by the
//	    dev CA, and writes DIR/pecet-bench.yaml: the dev config with the
//	    client identity allowed to use it (the dev keys are all RSA).
//	go run ./scripts/perf sweep --out docs/perf-sweep.png [--op OP] [--key K]
//	    [--concurrency 1,2,4,8,16,32] [--duration 5s] [-- extra pecet flags]
//	    runs `pecet bench --json` at each concurrency against a running
//	    pecetd and draws ops/s and p99 latency against concurrency as a PNG
//	    (image/png, no plotting library); the table goes to stdout.
//	go run ./scripts/perf soak [--duration 10m] [--dir DIR] [--faults 3s]
//	    [--fraction 0.8] [--json FILE]
//	    the soak of docs/reliability.md against a real pecetd built with
//	    -tags faultinject; exit 0 when every invariant held, 1 when one
//	    broke, 2 when it could not run. Other engineers share the machine:
//	    run it under `flock /tmp/perf.lock`.
//	go run ./scripts/perf sigstore [--algs rsa2048,p256] [--concurrency 1,16,64]
//	    [--duration 5s] [--dev-dir DIR] [--version v2.1.3]
//	    builds Sigstore's timestamp-authority at a pinned version outside
//	    this module and compares it with pecetd over RFC 3161 HTTP, same
//	    key algorithm, with pecet bench (sigstore.go); one table to stdout.
//	go run ./scripts/perf goals [--rounds 2] [--duration 5s] [--warmup 1s]
//	    [--dev-dir DIR] [--bin DIR] [--sigstore] [--lock /tmp/perf.lock]
//	    runs every measurement of the performance goals (docs/performance.md
//	    "Goals") against a pecetd it starts, under the benchmark lock, and
//	    prints the goals table (goals.go); --sigstore adds perf sigstore.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: perf eckey --dev-dir DIR | perf sweep [flags] | perf soak [flags] | perf sigstore [flags] | perf goals [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "eckey":
		err = ecKey(os.Args[2:])
	case "sweep":
		err = sweep(os.Args[2:])
	case "soak":
		os.Exit(soakCmd(os.Args[2:]))
	case "sigstore":
		err = sigstoreCmp(os.Args[2:])
	case "goals":
		err = goalsCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

// benchKey is the ECDSA key eckey makes.
const benchKey = "bench-ec"

func ecKey(args []string) error {
	if len(args) != 2 || args[0] != "--dev-dir" {
		return errors.New("usage: perf eckey --dev-dir DIR")
	}
	dir := args[1]
	if _, err := softhsm.EnsureEnv(dir); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "pecet.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	pinFile := cfg.Token.PINFile
	if !filepath.IsAbs(pinFile) {
		cfg.Token.PINFile = filepath.Join(dir, pinFile)
	}
	pin, err := cfg.Token.PIN()
	if err != nil {
		return err
	}
	ctx := context.Background()
	ks, err := keystore.Open(ctx, keystore.Config{ModulePath: cfg.Token.Module, TokenLabel: cfg.Token.Label, PIN: pin})
	if err != nil {
		return err
	}
	defer ks.Close()
	if _, err := ks.GetKey(ctx, benchKey); errors.Is(err, keystore.ErrKeyNotFound) {
		now := time.Now()
		ca, err := devca.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), now)
		if err != nil {
			return err
		}
		v, err := ks.CreateKey(ctx, benchKey, keystore.PurposeSign, keystore.ECP256)
		if err != nil {
			return err
		}
		cert, err := ca.Issue(benchKey, devca.CMSSign, v.Public, now)
		if err != nil {
			return err
		}
		if _, err := ks.ImportCertificate(ctx, benchKey, v.Version, []*x509.Certificate{cert, ca.Cert}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	old := "keys: [client-sign, gateway-decrypt]"
	if !strings.Contains(string(b), old) {
		return fmt.Errorf("%s: the client's key list is not the dev one", cfgPath)
	}
	out := strings.Replace(string(b), old, "keys: [client-sign, gateway-decrypt, "+benchKey+"]", 1)
	if err := os.WriteFile(filepath.Join(dir, "pecet-bench.yaml"), []byte(out), 0o600); err != nil {
		return err
	}
	fmt.Printf("%s ready; config %s\n", benchKey, filepath.Join(dir, "pecet-bench.yaml"))
	return nil
}
