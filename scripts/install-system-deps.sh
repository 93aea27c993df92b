#!/usr/bin/env bash
# Debian packages the test suite uses: openssl (the OpenSSL interop tests and
# the docs' verification recipe), jq and xxd (that recipe), systemd (for
# systemd-analyze verify of the shipped units). Installs only what is missing.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v jq >/dev/null || need+=(jq)
command -v xxd >/dev/null || need+=(xxd)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them with apt-get)" >&2
  fi
fi
