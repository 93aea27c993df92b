# package-lock.json with a "resolved" URL on every registry package.
#
# This project's lockfile is written with omit-lockfile-registry-resolved=true,
# so its entries carry only version and integrity; npm rebuilds the registry
# URL itself. nixpkgs' importNpmLock fetches only entries that have
# "resolved", so this puts the registry URL back, the way npm computes it:
#   https://registry.npmjs.org/<name>/-/<name without @scope/>-<version>.tgz
# The integrity hash still pins every tarball. Builtins only, so it evaluates
# without nixpkgs:
#   nix-instantiate --eval --strict --json -E 'import ./contrib/nixos/lock-resolved.nix { lock = builtins.fromJSON (builtins.readFile ./package-lock.json); }'
{ lock, registry ? "https://registry.npmjs.org" }:

let
  inherit (builtins) elemAt filter isString length mapAttrs split;
  last = list: elemAt list (length list - 1);
  splitOn = sep: s: filter isString (split sep s);

  # "node_modules/a/node_modules/@s/b" -> "@s/b"; an entry's "name" wins (npm aliases).
  nameOf = path: module: module.name or (last (splitOn "node_modules/" path));
  tarballUrl = path: module:
    let name = nameOf path module;
    in "${registry}/${name}/-/${last (splitOn "/" name)}-${module.version}.tgz";

  needsUrl = path: module:
    path != ""
    && !(module ? resolved)
    && !(module.link or false)
    && !(module.inBundle or false)
    && module ? version
    && module ? integrity;
in
lock // {
  packages = mapAttrs
    (path: module: if needsUrl path module then module // { resolved = tarballUrl path module; } else module)
    lock.packages;
}
