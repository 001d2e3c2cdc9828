#!/bin/sh
# bench-stream.sh: peak RSS (VmHWM) of a fresh pecetd under 16 concurrent
# 10 MB DecryptStream calls and, in the same run, under 16 unary Decrypts;
# then one body at a time against openssl cms (bench-openssl.sh with the
# streaming operations). Run it under the machine's measurement lock:
#
#   flock /tmp/perf.lock scripts/bench-stream.sh [DIR]
#
# pecetd and pecet come from PATH (release builds: go build -o bin/
# ./cmd/...); DIR (default a temporary folder) holds the dev folder. Prints
# the load average next to every figure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
base=${1:-$(mktemp -d)}
mkdir -p "$base"
D=$base/dev
export PECET_DEV_DIR=$D
load() { cut -d' ' -f1-3 /proc/loadavg; }
start() {
	pecetd --dev --dev-dir "$D" --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 >"$D.log" 2>&1 &
	PID=$!
	for _ in $(seq 1 150); do
		pecet keys list --as gateway >/dev/null 2>&1 && return
		sleep 0.2
	done
	echo "pecetd did not start: see $D.log" >&2
	exit 1
}
stop() { kill $PID; wait $PID 2>/dev/null; }
hwm() { awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$PID/status; }
start
stop # the dev folder, once
for op in decrypt-stream decrypt; do
	start
	echo "== fresh pecetd, $op 10m c16 8s; load $(load); VmHWM before $(hwm)"
	pecet bench --op $op --size 10m --concurrency 16 --duration 8s --warmup 1s --json --timeout 120s 2>/dev/null |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print("  %.2f bodies/s  %.1f MB/s  p50 %.0f ms  p99 %.0f ms  errors %s" % (r["ops_per_s"], r["mb_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"], r["errors"]))'
	echo "  VmHWM after $(hwm); load $(load)"
	stop
done
start
echo "== one body at a time against openssl; load $(load)"
OPS="decrypt decrypt-stream encrypt encrypt-stream" N=${N:-10} DURATION=${DURATION:-5s} PECET=pecet sh "$here/bench-openssl.sh" 10 aes256-cbc
stop
