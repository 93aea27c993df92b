// Bundles the CLI and daemon into dist/bundle/ (minified ESM, split so the
// daemon's libp2p code loads only for `dm daemon` and `dm id`). One minified
// bundle instead of ~400 node_modules files cuts the idle daemon's memory by
// about a fifth (V8 keeps every loaded module's source) and speeds start-up.
import fs from 'node:fs'
import { build } from 'esbuild'

// Start clean: stale chunks from an earlier build would otherwise be packed.
fs.rmSync('dist/bundle', { recursive: true, force: true })

await build({
  entryPoints: { dm: 'src/cli/entry.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // Bundled CommonJS dependencies call require(); ESM has none, so provide it.
  banner: { js: "import { createRequire as __dmCreateRequire } from 'node:module'; const require = __dmCreateRequire(import.meta.url);" }
})
