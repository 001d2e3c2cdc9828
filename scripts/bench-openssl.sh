#!/bin/sh
# bench-openssl.sh: 10 MB CMS encrypt and decrypt, pecet against
# `openssl cms` on the same body with the same cipher, in one run.
#
#   scripts/bench-openssl.sh [SIZE_MB] [CIPHER]       (default 10, aes256-cbc)
#
# pecet: `pecet bench --op encrypt|decrypt --concurrency 1` against the
# pecetd the usual pecet discovery finds (PECET_DEV_DIR, PECET_SERVER ...;
# extra flags in PECET_BENCH_FLAGS), key gateway-decrypt (RSA-2048 on the
# token), RSA-OAEP-SHA256 key transport. OpenSSL: the same size of random
# body, the same content cipher, a software RSA-2048 key (the one RSA
# operation is < 1 % of a 10 MB body either way), RSA-OAEP-SHA256, run N
# times back to back; the time per body includes OpenSSL's process start
# and file I/O, as a user of `openssl cms` pays them. Prints seconds per
# body for each, and the load average before each part. OPS lists the
# pecet bench operations (default "encrypt decrypt"; the streaming RPCs:
# OPS="decrypt decrypt-stream encrypt-stream").
set -eu
size=${1:-10}
cipher=${2:-aes256-cbc}
n=${N:-10}
pecet=${PECET:-pecet}
case $cipher in
aes256-cbc) ossl=-aes-256-cbc ;;
aes128-cbc) ossl=-aes-128-cbc ;;
aes256-gcm) ossl=-aes-256-gcm ;;
aes128-gcm) ossl=-aes-128-gcm ;;
*) echo "cipher: aes256-cbc|aes128-cbc|aes256-gcm|aes128-gcm" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/k.pem" -out "$tmp/c.pem" -subj /CN=bench -days 1 2>/dev/null
head -c $((size * 1048576)) /dev/urandom >"$tmp/body"
load() { cut -d' ' -f1 /proc/loadavg; }
per_body() { # command repeated n times; prints seconds per run
	s=$(date +%s.%N)
	i=0
	while [ $i -lt "$n" ]; do "$@"; i=$((i + 1)); done
	e=$(date +%s.%N)
	echo "$s $e $n" | awk '{printf "%.4f", ($2-$1)/$3}'
}
enc() { openssl cms -encrypt -binary $ossl -in "$tmp/body" -outform DER -out "$tmp/body.p7m" -recip "$tmp/c.pem" -keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256; }
dec() { openssl cms -decrypt -binary -inform DER -in "$tmp/body.p7m" -inkey "$tmp/k.pem" -recip "$tmp/c.pem" -out "$tmp/out"; }
enc
dec
cmp -s "$tmp/body" "$tmp/out" || { echo "openssl round trip failed" >&2; exit 1; }
l=$(load); t=$(per_body enc); echo "openssl cms -encrypt $cipher ${size}MB: $t s/body (load $l, $n runs)"
l=$(load); t=$(per_body dec); echo "openssl cms -decrypt $cipher ${size}MB: $t s/body (load $l, $n runs)"
for op in ${OPS:-encrypt decrypt}; do
	l=$(load)
	# shellcheck disable=SC2086
	"$pecet" bench --op $op --size ${size}m --cipher "$cipher" --concurrency 1 --duration "${DURATION:-5s}" --warmup 1s --json ${PECET_BENCH_FLAGS:-} 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print("pecet %s %s %sMB: %.4f s/body (p50 %.4f s, %.1f MB/s, load %s, %d bodies)" % (r["op"], sys.argv[1], sys.argv[2], 1/r["ops_per_s"], r["latency_ms"]["p50"]/1000, r["mb_per_s"], sys.argv[3], r["ops"]))' "$cipher" "$size" "$l"
done
