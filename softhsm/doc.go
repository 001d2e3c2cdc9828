// Package softhsm runs pecet against SoftHSM2 (the OpenDNSSEC project's
// software PKCS#11 token, https://github.com/softhsm/SoftHSMv2), for tests
// and for the `pecetd --dev` default only. It is not a production HSM: its
// keys are files under a directory, protected by the user PIN alone.
//
// FindModule locates libsofthsm2.so; Setup and EnsureEnv write the
// softhsm2.conf a process must point SOFTHSM2_CONF at before the module's
// first C_Initialize (SoftHSM reads the variable only then). NewToken and
// NewTokenConfig give each test a fresh token in a per-test-binary
// directory.
//
// Facts about SoftHSM 2.6 the design relies on, checked empirically:
//   - A C_InitToken in this process makes a new free slot appear at once,
//     so a test binary can make any number of tokens; they are found again by
//     label (slot ids change at every C_Initialize).
//   - Tokens another process (softhsm2-util) creates after this process's
//     C_Initialize are not seen until the module is finalised and
//     initialised again. Hence tests create their tokens in-process with
//     keystore.InitToken and never shell out to softhsm2-util.
//   - It lists CKM_RSA_PKCS_OAEP but accepts only SHA-1 parameters for it.
package softhsm
