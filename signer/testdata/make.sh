#!/bin/sh
# Makes the golden files of signer_test: a CA and an RSA-2048 signer valid
# for 100 years, some content, and OpenSSL's signatures over it:
#   openssl-detached.p7s      DER, detached, CAdES (signingCertificateV2)
#   openssl-attached-ber.p7s  BER as OpenSSL streams it, content attached
# The CA key is thrown away; the signer key stays for further fixtures.
# Run with OpenSSL 3 from anywhere: sh signer/testdata/make.sh
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$tmp/ca.key" -out ca.pem -days 36500 -set_serial 1 \
	-subj "/C=CZ/O=pecet test/CN=pecet golden CA" \
	-addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign

openssl req -newkey rsa:2048 -nodes -keyout signer.key -out "$tmp/signer.csr" \
	-subj "/C=CZ/O=pecet test/CN=pecet golden signer"
cat > "$tmp/ext" <<'EXT'
keyUsage=critical,digitalSignature,nonRepudiation
extendedKeyUsage=emailProtection
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in "$tmp/signer.csr" -CA ca.pem -CAkey "$tmp/ca.key" \
	-set_serial 0x5045434554 -days 36500 -extfile "$tmp/ext" -out signer.pem

printf 'Golden content for the pecet signer tests.\n' > content.txt

openssl cms -sign -binary -in content.txt -signer signer.pem -inkey signer.key \
	-md sha256 -cades -outform DER -out openssl-detached.p7s
openssl cms -sign -binary -in content.txt -signer signer.pem -inkey signer.key \
	-md sha256 -stream -nodetach -outform DER -out openssl-attached-ber.p7s
