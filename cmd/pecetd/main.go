// Command pecetd serves pecet's gRPC API (mTLS) and its HTTP endpoints, with
// the keys kept on a PKCS#11 token.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/pecet-hsm/pecet/internal/daemon"
	"github.com/pecet-hsm/pecet/internal/devmode"
	"github.com/pecet-hsm/pecet/internal/version"
	"github.com/pecet-hsm/pecet/keystore"
)

const usage = `pecetd: signing, decryption and time-stamping with keys kept in a PKCS#11 HSM

Usage:
  pecetd --config pecet.yaml [--grpc-addr ADDR] [--http-addr ADDR] [--pid-file FILE]
  pecetd --dev [--dev-dir DIR] [--grpc-addr ADDR] [--http-addr ADDR]
  pecetd --config pecet.yaml --audit-new-log ...
  pecetd --config pecet.yaml --init-audit-key > audit.pem
  pecetd --dev [--dev-dir DIR] [--grpc-addr ADDR] [--http-addr ADDR] [--dev-allow-remote]
  pecetd reload [--pid PID | --pid-file FILE | --dev-dir DIR]
  pecetd bench-token --key ALIAS --purpose P [--config FILE | --dev-dir DIR]   (run by pecet bench --baseline)
  pecetd --version

--dev needs no config: the first start creates DIR (default ./.pecet-dev/)
with a SoftHSM2 token, a dev CA (ca.pem), server and role client
certificates, the keys client-sign, gateway-decrypt and tsa certified by the
dev CA, and pecet.yaml; later starts reuse it. Every start makes DIR 0700
and its key and PIN files 0600. --dev listens on loopback addresses only:
a non-loopback --grpc-addr or --http-addr (0.0.0.0, a LAN address) is
refused unless --dev-allow-remote is given, and then logged as a warning.

Listens on gRPC 127.0.0.1:7443 (mTLS) and HTTP 127.0.0.1:7080
(GET /healthz, /readyz, /metrics) unless the config or the flags say
otherwise; flags win over the config. Relative paths in the config are
relative to its directory. Logs are JSON on stderr. SIGTERM or SIGINT
stops accepting, drains in-flight calls within the grace period, closes
the token's sessions, logs out and exits 0; a second signal during the
drain exits at once with status 1. Under systemd with Type=notify, pecetd
sends READY=1 once it serves and STOPPING=1 when it begins to drain.

Every call is audited in audit.file; a key on the token (audit.key, purpose
AUDIT) signs checkpoints of that log. pecetd refuses to start when the file
does not match the last checkpoint the token recorded (cut, edited or
replaced); --audit-new-log then moves it to FILE.broken-TIME and begins a
new log whose first line, signed, records why (docs/operations.md).
--init-audit-key creates the audit.key key on the token if it is missing
(EC P-256, purpose AUDIT, a self-signed certificate made on the token),
prints its certificate (PEM) and exits: archive it with the logs.
SIGHUP (or ` + "`pecetd reload`" + `, which sends it to the pecetd named by --pid,
--pid-file, or the dev folder's pecetd.addr) re-reads the config: clients
and their keys, policies and trusted lists, the TSA and the keys section
change without a restart; a config that fails validation is refused (the
one in force stays; the log says why, pecet_config_reload_total{result=
"failure"} counts it); changed addresses, TLS, token, audit, limits and
envelope settings are logged as needing a restart and otherwise ignored.
Calls in flight finish under the config they started with. Every reload
writes an audit line naming the sections that changed.

Exit status: 0 after a clean shutdown, 1 when start-up fails (the message
says what: config, PKCS#11 module, token, certificates, addresses) or a
second signal cut the drain short, 2 for a usage error, 3 when the token
refused the PIN or the PIN is locked (do not restart: each try counts
towards the HSM's lockout; the systemd unit has RestartPreventExitStatus=3).

Flags:
`

// exitPIN: the token refused the PIN (or it is locked).
const exitPIN = 3

func main() {
	if len(os.Args) > 1 && os.Args[1] == "reload" {
		os.Exit(runReload(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "bench-token" {
		os.Exit(runBenchToken(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	// Registered before anything else: SIGHUP's default action ends the
	// process, and a reload asked for during start-up must not.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	fs := flag.NewFlagSet("pecetd", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var o daemon.Options
	fs.StringVar(&o.ConfigPath, "config", "", "YAML configuration `file`")
	fs.BoolVar(&o.Dev, "dev", false, "run on the embedded dev default (SoftHSM token and dev PKI in --dev-dir)")
	fs.StringVar(&o.DevDir, "dev-dir", devmode.DefaultDir, "dev folder `DIR`, with --dev")
	fs.StringVar(&o.GRPCAddr, "grpc-addr", "", "gRPC listen `address` (default 127.0.0.1:7443)")
	fs.StringVar(&o.HTTPAddr, "http-addr", "", "HTTP listen `address` (default 127.0.0.1:7080)")
	fs.BoolVar(&o.AuditNewLog, "audit-new-log", false, "if the audit log does not match the token's last checkpoint, move it aside and start a new log with a signed note of the break")
	initAuditKey := fs.Bool("init-audit-key", false, "create the audit.key key on the token if missing, print its certificate (PEM) and exit")
	fs.BoolVar(&o.DevAllowRemote, "dev-allow-remote", false, "with --dev, allow non-loopback --grpc-addr/--http-addr (refused otherwise: the dev CA key and PIN are on disk, /tsa and /metrics open)")
	fs.StringVar(&o.PIDFile, "pid-file", "", "write the process id to `FILE` once serving (for pecetd reload --pid-file)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn, error")
	showVersion := fs.Bool("version", false, "print the version and commit, and exit")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to `FILE` until shutdown (for measuring; docs/performance.md)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pecetd: unexpected argument %q (see pecetd --help)\n", fs.Arg(0))
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("pecetd", version.Get())
		os.Exit(0)
	}
	if o.Dev == (o.ConfigPath != "") {
		fmt.Fprintln(os.Stderr, "pecetd: give exactly one of --config FILE or --dev (see pecetd --help)")
		os.Exit(2)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "pecetd: --log-level: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	o.Out = os.Stdout
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			// Signals that come during a reload make one more reload.
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	o.Reload = reload
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go forceOnSecondSignal(ctx, log)
	if *initAuditKey {
		if err := daemon.InitAuditKey(ctx, o, os.Stdout, log); err != nil {
			fmt.Fprintf(os.Stderr, "pecetd: %v\n", err)
			if errors.Is(err, keystore.ErrPINIncorrect) || errors.Is(err, keystore.ErrPINLocked) {
				os.Exit(exitPIN)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	stopProfile := func() error { return nil }
	if *cpuProfile != "" {
		var err error
		if stopProfile, err = startCPUProfile(*cpuProfile); err != nil {
			fmt.Fprintf(os.Stderr, "pecetd: %v\n", err)
			os.Exit(2)
		}
	}
	err := daemon.Run(ctx, o, log)
	if perr := stopProfile(); perr != nil {
		log.Error("writing the CPU profile", "err", perr.Error())
	}
	if err != nil {
		log.Error("pecetd cannot start", "err", err.Error())
		fmt.Fprintf(os.Stderr, "pecetd: %v\n", err)
		if errors.Is(err, keystore.ErrPINIncorrect) || errors.Is(err, keystore.ErrPINLocked) {
			// A supervisor must not restart us: every start with a wrong
			// PIN is one more failed login towards the HSM's lockout.
			os.Exit(exitPIN)
		}
		os.Exit(1)
	}
}

// forceOnSecondSignal exits at once, with status 1, when a second SIGTERM or
// SIGINT comes while the first one's graceful shutdown is still draining.
func forceOnSecondSignal(ctx context.Context, log *slog.Logger) {
	<-ctx.Done()
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
	log.Warn("second signal: exiting without draining")
	os.Exit(1)
}
