// Bundles the CLI and daemon into dist/bundle/ (minified ESM, split so the
// daemon's libp2p code loads only for `dm daemon` and `dm id`). One minified
// bundle instead of ~400 node_modules files cuts the idle daemon's memory by
// about a fifth (V8 keeps every loaded module's source) and speeds start-up.
// Then writes the man page and bash completion from the CLI's command table.
import fs from 'node:fs'
import { build } from 'esbuild'
import { tsImport } from 'tsx/esm/api'

// Start clean: stale output from an earlier build would otherwise be packed.
fs.rmSync('dist', { recursive: true, force: true })

const result = await build({
  entryPoints: { dm: 'src/cli/entry.ts' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  minify: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  metafile: true,
  // Bundled CommonJS dependencies call require(); ESM has none, so provide it.
  banner: { js: "import { createRequire as __dmCreateRequire } from 'node:module'; const require = __dmCreateRequire(import.meta.url);" }
})

// Which source files went into which chunk: the start-up test checks the client verbs load no libp2p or pino.
const chunks = Object.fromEntries(Object.entries(result.metafile.outputs).map(([out, o]) => [out, Object.keys(o.inputs)]))
fs.writeFileSync('dist/bundle-chunks.json', JSON.stringify(chunks))

// The man page and completion come from the same table as --help (read from the sources; tsc only type-checks).
const { commands } = await tsImport('../src/cli/main.ts', import.meta.url)
const { manPage, bashCompletion } = await tsImport('../src/cli/help.ts', import.meta.url)
fs.writeFileSync('dist/dm.1', manPage(commands))
fs.writeFileSync('dist/dm.bash', bashCompletion(commands))
