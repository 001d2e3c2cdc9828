// Package cms holds the ASN.1 pieces that pecet's CMS libraries (signer,
// envelope, tsa) and the packages under them (keystore, policy) share, so
// each exists once: the object identifiers they share and the conversion
// of a raw ECDSA signature (r‖s) to DER. It imports nothing of the module;
// docs/architecture.md lists where it sits.
package cms
