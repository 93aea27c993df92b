# data-mesher built from this checkout with nixpkgs' buildNpmPackage.
#   pkgs.callPackage ./contrib/nixos/package.nix { }
# importNpmLock fetches each locked tarball by its integrity hash, so there is
# no npmDepsHash to keep up to date. Needs nixpkgs 25.05 or later
# (importNpmLock, lib.fileset, nodejs_24). Not built in this repository's CI; see
# docs/NIXOS.md for what has and has not been checked.
{ lib, buildNpmPackage, importNpmLock, nodejs_24 }:

let
  root = ../..;
  pkg = lib.importJSON (root + "/package.json");
  lock = import ./lock-resolved.nix { lock = lib.importJSON (root + "/package-lock.json"); };

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/package.json")
      (root + "/package-lock.json")
      (root + "/tsconfig.json")
      (root + "/src")
      # `npm run build` runs scripts/bundle.mjs after tsc.
      (root + "/scripts")
      (root + "/bin")
      (root + "/config.example.toml")
      (root + "/contrib")
      (lib.fileset.maybeMissing (root + "/docs"))
      (lib.fileset.maybeMissing (root + "/README.md"))
      (lib.fileset.maybeMissing (root + "/LICENSE"))
    ];
  };
in
buildNpmPackage {
  pname = pkg.name;
  inherit (pkg) version;
  inherit src;
  # Node 24, the Active LTS line (Node 20 reached end of life in April 2026).
  nodejs = nodejs_24;

  npmDeps = importNpmLock {
    npmRoot = src;
    packageLock = lock;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # tsc, then the esbuild bundle that bin/dm loads; dev dependencies are pruned afterwards.
  npmBuildScript = "build";

  meta = {
    description = pkg.description;
    license = lib.licenses.mit;
    mainProgram = "dm";
    platforms = lib.platforms.linux;
  };
}
