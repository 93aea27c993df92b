#!/usr/bin/env bash
# Debian packages the test suite uses: openssl (the OpenSSL interop tests and
# the docs' verification recipe), jq and xxd (that recipe), systemd (for
# systemd-analyze verify of the shipped units), iproute2 (network namespaces
# for the partition test), faketime (daemons with skewed clocks), python3 (a
# stand-in systemd notify socket), python3-seccomp (the unit's syscall filter).
# The benchmarks' same-run baselines (bench/, not the test suite): serf
# (HashiCorp Serf agents, bench/propagation.mjs --baseline serf) and syncthing
# (bench/bigfile.mjs).
# Installs only what is missing.
set -euo pipefail
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v jq >/dev/null || need+=(jq)
command -v xxd >/dev/null || need+=(xxd)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v ip >/dev/null || need+=(iproute2)
command -v faketime >/dev/null || need+=(faketime)
command -v python3 >/dev/null || need+=(python3)
# libseccomp's Python binding, for running the daemon under the unit's syscall filter.
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || need+=(python3-seccomp)
command -v serf >/dev/null || need+=(serf)
command -v syncthing >/dev/null || need+=(syncthing)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them with apt-get)" >&2
  fi
fi

# npm run test:systemd: a Debian root booted with systemd as PID 1 (systemd-nspawn), built by debootstrap.
need_systemd_test=()
command -v systemd-nspawn >/dev/null || need_systemd_test+=(systemd-container)
command -v debootstrap >/dev/null || need_systemd_test+=(debootstrap)
if [ ${#need_systemd_test[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_systemd_test[@]}" >/dev/null
  else
    echo "missing: ${need_systemd_test[*]} (install them with apt-get)" >&2
  fi
fi
