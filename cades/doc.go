// Package cades raises a CAdES signature (a CMS SignedData that package
// signer made or parsed) to the baseline levels of ETSI EN 319 122-1 and
// verifies it with the material those levels embed:
//
//   - T: a signature-time-stamp (id-aa-signatureTimeStampToken) over the
//     signature value;
//   - LT: certificate-values (id-aa-ets-certValues) and revocation-values
//     (id-aa-ets-revocationValues) holding exactly the certificates and
//     CRLs a VALID validation under the named policy used;
//   - LTA: an archive-time-stamp-v3 (0.4.0.1733.2.4) with its
//     ats-hash-index-v3 (0.4.0.19122.1.5), EN 319 122-1 5.5.3; renewal adds
//     another one covering the previous ones.
//
// Augment changes only unsigned attributes of the signer (and, at LTA
// renewal, appends certificates and CRLs to the SignedData's certificates
// and crls fields, which no signature covers), so the signature still
// verifies in any CMS verifier (openssl cms -verify). Verify judges the
// signer's chain at the proof-of-existence time the archive time-stamps
// give, with the embedded certificates and CRLs, and names the level
// reached. See docs/archive.md "CAdES augmentation".
package cades
