// Package client dials pecetd over mTLS, from a dev folder or from explicit
// certificate files, so that the CLI, the examples and integrators write no
// TLS code: client.Dial(client.Options{}) in a folder where `pecetd --dev`
// runs is all it takes, and Conn carries the pecet.v1 service clients.
//
// Where the settings come from, first match wins, field by field: the
// Options fields (the CLI's flags), then the PECET_SERVER, PECET_CERT,
// PECET_KEY, PECET_CA and PECET_DEV_DIR environment variables, then the dev
// folder (Options.DevDir, PECET_DEV_DIR, or ./.pecet-dev when it exists),
// whose role certificate (Options.Role: client, gateway or officer) and
// dev CA are used and whose pecetd.addr names the running server. The
// server defaults to 127.0.0.1:7443. Without a certificate, key and CA from
// any of these, Resolve returns ErrNoCredentials.
//
// Conn.EncryptStream and Conn.DecryptStream drive the streaming envelope
// RPCs from an io.Reader to an io.Writer, sending and receiving at once
// (a bidirectional stream whose two directions do not run together stalls
// on flow control) and holding a few 256 KiB chunks whatever the size.
//
// DialAll spreads calls over several replicas with gRPC's round_robin
// balancer.
//
// The transport is TLS 1.2 or later with a client certificate (RFC 8446,
// RFC 5246); the server certificate is verified against the given CA only.
// It configures no retries: a call that reached a replica and failed is
// reported, not repeated on another one (gRPC itself re-sends only a call
// that no server received, e.g. one caught by a replica's GOAWAY).
package client
