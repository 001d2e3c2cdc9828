// Package kubernetes holds pecetd's Kubernetes manifests (a Deployment of
// three stateless replicas, a headless Service, the ConfigMap with
// pecet.yaml, the Secret for the PIN and TLS material, a
// PodDisruptionBudget and a NetworkPolicy) and the test that keeps them
// from drifting from the code: every manifest decodes strictly into the
// k8s.io/api types (an unknown or misspelt field fails), the ConfigMap's
// pecet.yaml passes pecetd's own config parser, and the probes and ports
// match the addresses pecetd listens on and the paths it serves.
//
// It has no code, so the Kubernetes API modules are a test-only dependency
// and the pecet binaries do not carry them.
package kubernetes
