package softhsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ModuleEnv names the environment variable that overrides FindModule.
const ModuleEnv = "PECET_PKCS11_MODULE"

// modulePaths are where distributions put SoftHSM2's PKCS#11 module.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian, Ubuntu (multiarch)
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian, Ubuntu arm64
	"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora, RHEL
	"/usr/local/lib/softhsm/libsofthsm2.so",             // source builds, macOS Intel brew
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",          // macOS arm64 brew
}

// ErrNotInstalled: no SoftHSM2 module found.
var ErrNotInstalled = errors.New("softhsm: SoftHSM2 module not found; install softhsm2 (apt install softhsm2, dnf install softhsm, apk add softhsm, brew install softhsm) or set " + ModuleEnv)

// FindModule returns the SoftHSM2 module path: $PECET_PKCS11_MODULE when set,
// else the first of the usual install locations that exists.
func FindModule() (string, error) {
	if p := os.Getenv(ModuleEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("softhsm: %s=%s: %w", ModuleEnv, p, err)
		}
		return p, nil
	}
	for _, p := range modulePaths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Setup writes dir/softhsm2.conf keeping tokens in dir/tokens, and returns
// the configuration's absolute path. Running it again on the same dir keeps
// the tokens.
func Setup(dir string) (confPath string, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	tokens := filepath.Join(dir, "tokens")
	// Token files hold the keys, encrypted under the PIN only: owner only.
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := "# Written by pecet (softhsm.Setup).\n" +
		"directories.tokendir = " + tokens + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	return conf, nil
}

// EnsureEnv points SOFTHSM2_CONF at dir's configuration (writing it with
// Setup) unless the variable is already set, and returns the configuration
// in force. It must run before the module's first C_Initialize in the
// process, that is, before keystore.Open or keystore.InitToken.
func EnsureEnv(dir string) (confPath string, err error) {
	if c := os.Getenv("SOFTHSM2_CONF"); c != "" {
		return c, nil
	}
	conf, err := Setup(dir)
	if err != nil {
		return "", err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	return conf, nil
}
