#!/usr/bin/env bash
# Prints the path of a minimal Debian root that boots systemd as PID 1 under
# systemd-nspawn, building it first if needed (about 1.5 minutes, ~250 MiB).
# It has systemd 252 and dbus (debootstrap minbase: no procps, no kill(1)), and
# the pinned Node 24 and npm in /usr/local, where a Node install from the
# official tarball puts them. test/system/systemd.test.ts boots it.
#
# The root is cached under ${DM_CACHE_DIR:-~/.cache/data-mesher}/rootfs-<hash>,
# the hash of this script (it is the whole recipe), so CI builds it once per
# machine and again only when this file changes. Runs as root; needs debootstrap
# (scripts/install-system-deps.sh). Other roots in the cache are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
suite=bookworm
npm_version=11.19.1
cache=${DM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/data-mesher}
key=$(cat scripts/systemd-root.sh scripts/node24.sh | sha256sum | cut -c1-16)
root=$cache/rootfs-$key
if [ -e "$root/.complete" ]; then echo "$root"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/rootfs.lock"
flock 9 # another build of the same root: wait for it
if [ -e "$root/.complete" ]; then echo "$root"; exit 0; fi

node=$(bash scripts/node24.sh)
# The mirror apt already uses on this machine, for the suite itself.
mirror=$(apt-get indextargets --format '$(REPO_URI)' "Release: $suite" 'Created-By: Packages' 2>/dev/null | head -n1)
[ -n "$mirror" ] || { echo "systemd-root: no apt source for Debian $suite" >&2; exit 1; }

tmp=$cache/.rootfs-$key.tmp
rm -rf "$tmp"
echo "systemd-root: debootstrap $suite into $tmp" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
  { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*

# Node and npm where the official tarball puts them: npm's global prefix is
# then /usr/local, so `npm install -g` puts dm in /usr/local/bin, on systemd's PATH.
install -m 0755 "$node" "$tmp/usr/local/bin/node"
npmdir=$(mktemp -d)
npm install --prefix "$npmdir" --no-save --no-audit --no-fund --loglevel=error "npm@$npm_version" >&2
mkdir -p "$tmp/usr/local/lib/node_modules"
mv "$npmdir/node_modules/npm" "$tmp/usr/local/lib/node_modules/npm"
rm -rf "$npmdir"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/usr/local/bin/npx"

touch "$tmp/.complete"
for old in "$cache"/rootfs-*; do [ "$old" = "$root" ] || rm -rf "$old"; done
mv "$tmp" "$root"
echo "$root"
