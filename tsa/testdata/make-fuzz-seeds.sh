#!/bin/sh
# Makes the seed corpus of FuzzParseRequest from real `openssl ts -query`
# outputs (and FuzzParseToken from real pecet responses is done by the test
# itself, see fuzz_test.go). Run from the tsa/ directory:
#   sh testdata/make-fuzz-seeds.sh
# Needs openssl and od. The seeds are committed; rerun only to refresh them.
set -eu
out=testdata/fuzz/FuzzParseRequest
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '<PRIHL><employee dep="123" act="1"/></PRIHL>\n' > "$tmp/data"

seed() { # name, then openssl ts -query options
	name=$1
	shift
	openssl ts -query -data "$tmp/data" "$@" -out "$tmp/q.tsq" 2>/dev/null
	hex=$(od -An -v -tx1 "$tmp/q.tsq" | tr -d ' \n' | sed 's/../\\x&/g')
	printf 'go test fuzz v1\n[]byte("%s")\n' "$hex" > "$out/$name"
}

seed openssl-sha256-cert-nonce -sha256 -cert
seed openssl-sha256-no-nonce -sha256 -no_nonce
seed openssl-sha384-policy -sha384 -cert -tspolicy 1.2.3.4.1
seed openssl-sha512 -sha512
seed openssl-sha1 -sha1 -cert
seed openssl-md5 -md5 -no_nonce

# Tokens from OpenSSL acting as a TSA: seeds for FuzzParseToken and the
# fixtures of TestVerifyOpenSSLToken (a CA and TSA certificate valid for
# 100 years, a response with and one without the certificate).
cat > "$tmp/ts.cnf" <<'CNF'
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = $ENV::TSA_SERIAL
crypto_device = builtin
default_policy = 1.2.3.4.1
signer_digest = sha256
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ v3_tsa ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = critical,timeStamping
CNF
export TSA_SERIAL="$tmp/serial"
echo 01 > "$TSA_SERIAL"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" \
	-subj "/CN=OpenSSL test CA" -days 36500 -out testdata/openssl-ca.pem 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/tsa.key" \
	-subj "/CN=OpenSSL test TSA" -out "$tmp/tsa.csr" 2>/dev/null
openssl x509 -req -in "$tmp/tsa.csr" -CA testdata/openssl-ca.pem -CAkey "$tmp/ca.key" -CAcreateserial -CAserial "$tmp/ca.srl" \
	-days 36500 -extfile "$tmp/ts.cnf" -extensions v3_tsa -out testdata/openssl-tsa.pem 2>/dev/null
cp "$tmp/data" testdata/openssl-data.xml
for c in cert nocert; do
	opt=""
	[ $c = cert ] && opt=-cert
	openssl ts -query -data "$tmp/data" -sha256 $opt -out "$tmp/q.tsq" 2>/dev/null
	cp "$tmp/q.tsq" testdata/openssl-$c.tsq
	openssl ts -reply -config "$tmp/ts.cnf" -queryfile "$tmp/q.tsq" -signer testdata/openssl-tsa.pem \
		-inkey "$tmp/tsa.key" -out testdata/openssl-$c.tsr 2>/dev/null
	hex=$(od -An -v -tx1 testdata/openssl-$c.tsr | tr -d ' \n' | sed 's/../\\x&/g')
	mkdir -p testdata/fuzz/FuzzParseToken
	printf 'go test fuzz v1\n[]byte("%s")\n' "$hex" > testdata/fuzz/FuzzParseToken/openssl-$c
done
