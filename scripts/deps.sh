#!/usr/bin/env bash
# Installs what pecet needs from Debian/Ubuntu packages when it is missing:
# SoftHSM2 (the dev and test token), OpenSSL (the interoperability peer),
# OpenSC (pkcs11-tool, handy for looking at a token). Uses sudo only when
# not root. (Code generation needs no protoc: buf and the plugins are Go
# tools pinned in go.mod.)
set -euo pipefail
need=()
command -v softhsm2-util >/dev/null 2>&1 || need+=(softhsm2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v pkcs11-tool >/dev/null 2>&1 || need+=(opensc)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "pecet needs: ${need[*]} (no apt-get here: install them with your package manager)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
