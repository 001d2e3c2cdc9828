package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/devca"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/softhsm"
)

// sigstoreModule is the peer: Sigstore's RFC 3161 timestamp authority.
// sigstoreVersion is the newest release whose go.mod the repository's Go
// (1.26) builds: v2.1.4 and later ask for Go 1.27.
const (
	sigstoreModule  = "github.com/sigstore/timestamp-authority/v2"
	sigstoreVersion = "v2.1.3"
)

// ecTSAKey is the P-256 TIMESTAMP key sigstore makes on the dev token for
// the ECDSA runs (the dev TSA key, tsa, is RSA-2048).
const ecTSAKey = "bench-tsa-ec"

// sigstoreCmp: perf sigstore. It builds Sigstore's timestamp-server at a
// pinned version from the Go module proxy in a temporary directory (never
// in pecet's go.mod), starts it with a file signing key made on the spot
// (no KMS, no NTP monitoring: no network), starts pecetd on the dev token
// with a key of the same algorithm, and drives both over RFC 3161 HTTP
// with `pecet bench --op timestamp-http` at each concurrency, alternating
// which goes first. docs/performance.md "Peer comparison" has the method.
func sigstoreCmp(args []string) error {
	fs := flag.NewFlagSet("sigstore", flag.ContinueOnError)
	devDir := fs.String("dev-dir", "", "pecetd dev folder `DIR` (made with pecetd --dev if missing; default: a new one in the temporary directory)")
	version := fs.String("version", sigstoreVersion, "timestamp-authority `version` to build")
	algs := fs.String("algs", "rsa2048,p256", "signing key algorithms: rsa2048, p256")
	concs := fs.String("concurrency", "1,16,64", "comma-separated concurrencies")
	dur := fs.Duration("duration", 5*time.Second, "measured duration of each cell")
	warm := fs.Duration("warmup", time.Second, "warm-up of each cell")
	bin := fs.String("bin", "", "`DIR` holding pecet and pecetd (default: built from this checkout)")
	keep := fs.Bool("keep", false, "keep the temporary directory (logs, keys)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var levels []int
	for _, s := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("--concurrency: %q", s)
		}
		levels = append(levels, c)
	}
	tmp, err := os.MkdirTemp("", "pecet-sigstore-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "perf sigstore: keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if *devDir == "" {
		*devDir = filepath.Join(tmp, "dev")
	}
	if *devDir, err = filepath.Abs(*devDir); err != nil {
		return err
	}
	if *bin == "" {
		*bin = filepath.Join(tmp, "bin")
		fmt.Fprintln(os.Stderr, "perf sigstore: building pecet and pecetd")
		if err := run(".", nil, "go", "build", "-o", *bin+"/", "./cmd/pecet", "./cmd/pecetd"); err != nil {
			return err
		}
	}
	// go install PKG@VERSION resolves and builds the module on its own,
	// outside any go.mod (GOWORK=off, run in the empty temporary
	// directory), checked against the checksum database like any module.
	fmt.Fprintf(os.Stderr, "perf sigstore: building %s/cmd/timestamp-server@%s\n", sigstoreModule, *version)
	if err := run(tmp, []string{"GOBIN=" + filepath.Join(tmp, "bin"), "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local"},
		"go", "install", sigstoreModule+"/cmd/timestamp-server@"+*version); err != nil {
		return err
	}
	tsaBin := filepath.Join(tmp, "bin", "timestamp-server")
	pecet, pecetd := filepath.Join(*bin, "pecet"), filepath.Join(*bin, "pecetd")
	if err := ensureDevDir(pecetd, *devDir, tmp); err != nil {
		return err
	}

	type cell struct {
		alg       string
		conc      int
		peer, own benchResult
		load      string
	}
	var cells []cell
	for _, alg := range strings.Split(*algs, ",") {
		alg = strings.TrimSpace(alg)
		cfg := filepath.Join(*devDir, "pecet.yaml")
		switch alg {
		case "rsa2048":
		case "p256":
			if cfg, err = ecTSAConfig(*devDir); err != nil {
				return err
			}
		default:
			return fmt.Errorf("--algs: %q (rsa2048, p256)", alg)
		}
		grpcAddr, httpAddr, tsaAddr := freeAddr(), freeAddr(), freeAddr()
		stopPecetd, err := start(filepath.Join(tmp, "pecetd-"+alg+".log"), pecetd, "--config", cfg, "--grpc-addr", grpcAddr, "--http-addr", httpAddr)
		if err != nil {
			return err
		}
		keyPath, chainPath, err := peerKey(tmp, alg)
		if err != nil {
			stopPecetd()
			return err
		}
		host, port, _ := net.SplitHostPort(tsaAddr)
		stopPeer, err := start(filepath.Join(tmp, "sigstore-"+alg+".log"), tsaBin, "serve", "--host", host, "--port", port,
			"--timestamp-signer", "file", "--file-signer-key-path", keyPath, "--certificate-chain-path", chainPath,
			"--disable-ntp-monitoring", "--log-type", "prod")
		if err != nil {
			stopPecetd()
			return err
		}
		stopBoth := func() { stopPeer(); stopPecetd() }
		if err := waitHTTP("http://"+httpAddr+"/readyz", "http://"+tsaAddr+"/ping"); err != nil {
			stopBoth()
			return fmt.Errorf("%s (logs in %s; --keep keeps them): %w", alg, tmp, err)
		}
		for i, c := range levels {
			b := func(url string) (benchResult, error) {
				return benchHTTP(pecet, *devDir, grpcAddr, url, c, *dur, *warm)
			}
			x := cell{alg: alg, conc: c, load: loadAvg()}
			peerURL, ownURL := "http://"+tsaAddr+"/api/v1/timestamp", "http://"+httpAddr+"/tsa"
			// Alternate which server goes first, so neither always gets
			// the quieter minute.
			first, second := &x.peer, &x.own
			firstURL, secondURL := peerURL, ownURL
			if i%2 == 1 {
				first, second, firstURL, secondURL = second, first, secondURL, firstURL
			}
			if *first, err = b(firstURL); err == nil {
				*second, err = b(secondURL)
			}
			if err != nil {
				stopBoth()
				return err
			}
			x.load += "→" + loadAvg()
			cells = append(cells, x)
		}
		stopBoth()
	}
	fmt.Printf("sigstore timestamp-authority %s (key in a file) against pecetd (key on SoftHSM, audit log on, audit.sync: event); POST RFC 3161, SHA-256, nonce, certReq; %v per cell\n\n", *version, *dur)
	fmt.Println("| key | conc | sigstore ops/s | p50 ms | p99 ms | pecet ops/s | p50 ms | p99 ms | pecet/sigstore | errors (s; p) | load avg |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, x := range cells {
		ratio := 0.0
		if x.peer.Rate > 0 {
			ratio = x.own.Rate / x.peer.Rate
		}
		fmt.Printf("| %s | %d | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.2f | %d; %d | %s |\n", x.alg, x.conc,
			x.peer.Rate, x.peer.Latency["p50"], x.peer.Latency["p99"], x.own.Rate, x.own.Latency["p50"], x.own.Latency["p99"], ratio,
			x.peer.errors(), x.own.errors(), x.load)
	}
	return nil
}

// benchResult is what sigstore reads from `pecet bench --json`.
type benchResult struct {
	Rate    float64            `json:"ops_per_s"`
	Latency map[string]float64 `json:"latency_ms"`
	Errors  map[string]int64   `json:"errors"`
	Wrong   int64              `json:"wrong"`
}

func (r benchResult) errors() int64 {
	n := r.Wrong
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// benchHTTP runs pecet's load generator against an RFC 3161 URL. The gRPC
// server and dev folder are only for pecet's connection set-up (the
// operation itself is HTTP).
func benchHTTP(pecet, devDir, grpcAddr, url string, conc int, dur, warm time.Duration) (benchResult, error) {
	cmd := exec.Command(pecet, "bench", "--op", "timestamp-http", "--tsa-url", url, "--concurrency", strconv.Itoa(conc),
		"--duration", dur.String(), "--warmup", warm.String(), "--json", "--server", grpcAddr, "--dev-dir", devDir)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return benchResult{}, fmt.Errorf("pecet bench against %s: %w\n%s", url, err, b)
	}
	var r benchResult
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("pecet bench output: %w", err)
	}
	return r, nil
}

// ensureDevDir makes the dev folder by starting pecetd --dev once, when it
// has no pecet.yaml yet.
func ensureDevDir(pecetd, dir, tmp string) error {
	if _, err := os.Stat(filepath.Join(dir, "pecet.yaml")); err == nil {
		_, err := softhsm.EnsureEnv(dir)
		return err
	}
	fmt.Fprintln(os.Stderr, "perf sigstore: making the dev folder", dir)
	httpAddr := freeAddr()
	stop, err := start(filepath.Join(tmp, "pecetd-dev.log"), pecetd, "--dev", "--dev-dir", dir, "--grpc-addr", freeAddr(), "--http-addr", httpAddr)
	if err != nil {
		return err
	}
	err = waitHTTP("http://" + httpAddr + "/readyz")
	stop()
	if err != nil {
		return err
	}
	_, err = softhsm.EnsureEnv(dir)
	return err
}

// ecTSAConfig makes the P-256 TIMESTAMP key ecTSAKey on the dev token,
// certified by the dev CA for time-stamping, and writes the dev config
// with tsa.key naming it (pecet-tsa-ec.yaml).
func ecTSAConfig(dir string) (string, error) {
	cfgPath := filepath.Join(dir, "pecet.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(cfg.Token.PINFile) {
		cfg.Token.PINFile = filepath.Join(dir, cfg.Token.PINFile)
	}
	pin, err := cfg.Token.PIN()
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	ks, err := keystore.Open(ctx, keystore.Config{ModulePath: cfg.Token.Module, TokenLabel: cfg.Token.Label, PIN: pin})
	if err != nil {
		return "", err
	}
	defer ks.Close()
	if _, err := ks.GetKey(ctx, ecTSAKey); errors.Is(err, keystore.ErrKeyNotFound) {
		now := time.Now()
		ca, err := devca.LoadOrCreateCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), now)
		if err != nil {
			return "", err
		}
		v, err := ks.CreateKey(ctx, ecTSAKey, keystore.PurposeTimestamp, keystore.ECP256)
		if err != nil {
			return "", err
		}
		cert, err := ca.Issue(ecTSAKey, devca.TSA, v.Public, now)
		if err != nil {
			return "", err
		}
		if _, err := ks.ImportCertificate(ctx, ecTSAKey, v.Version, []*x509.Certificate{cert, ca.Cert}); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", err
	}
	old := "\ntsa:"
	i := strings.Index(string(b), old)
	j := -1
	if i >= 0 {
		j = strings.Index(string(b)[i:], "\n  key: tsa\n")
	}
	if j < 0 {
		return "", fmt.Errorf("%s: no tsa section with key: tsa (not the dev config?)", cfgPath)
	}
	out := string(b)[:i+j] + "\n  key: " + ecTSAKey + "\n" + string(b)[i+j+len("\n  key: tsa\n"):]
	path := filepath.Join(dir, "pecet-tsa-ec.yaml")
	return path, os.WriteFile(path, []byte(out), 0o600)
}

// peerKey writes the peer's signing key (PKCS#8 PEM, made now) and its
// chain: a leaf for time-stamping (critical extended key usage
// timeStamping only, as RFC 3161 requires) under a CA made now.
func peerKey(dir, alg string) (keyPath, chainPath string, err error) {
	var key crypto.Signer
	switch alg {
	case "rsa2048":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	keyPath = filepath.Join(dir, "sigstore-"+alg+"-key.pem")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	now := time.Now()
	ca, err := devca.NewCA("sigstore bench CA", now)
	if err != nil {
		return "", "", err
	}
	leaf, err := ca.Issue("sigstore bench TSA", devca.TSA, key.Public(), now)
	if err != nil {
		return "", "", err
	}
	chainPath = filepath.Join(dir, "sigstore-"+alg+"-chain.pem")
	return keyPath, chainPath, devca.WriteCerts(chainPath, leaf, ca.Cert)
}

// start runs a server with its output in logPath; stop ends it (SIGTERM,
// then waits).
func start(logPath, name string, args ...string) (stop func(), err error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		lf.Close()
	}, nil
}

// waitHTTP waits until every URL answers 200.
func waitHTTP(urls ...string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range urls {
		for {
			resp, err := http.Get(u) //nolint:gosec // loopback URLs this command made
			last := ""
			if err != nil {
				last = err.Error()
			} else {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				last = resp.Status
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not answer 200 within 60s: %s", u, last)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// freeAddr is a loopback address with a port free right now.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// run runs a command in dir with extra environment, its output on stderr.
func run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
