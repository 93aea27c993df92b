#!/usr/bin/env node
// Builds the daemon's bundle unminified into DIR (default: a new temporary
// directory), for CPU profiles with readable function names; prints the
// entry point to pass as --script to propagation.mjs or catchup.mjs.
//
//   node bench/unminified.mjs [DIR]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const out = path.resolve(process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dm-unminified-')))
await build({
  absWorkingDir: root,
  // What bin/dm does with the full bundle: run main() with the arguments, exit with its code.
  stdin: { contents: "import { main } from './src/cli/entry.ts'\nmain(process.argv.slice(2)).then(code => process.exit(code))\n", resolveDir: root, loader: 'ts', sourcefile: 'unminified-entry.ts' },
  outfile: path.join(out, 'dm.js'),
  bundle: true,
  minify: false,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // As scripts/bundle.mjs: bundled CommonJS dependencies call require().
  banner: { js: "import { createRequire as __dmCreateRequire } from 'node:module'; const require = __dmCreateRequire(import.meta.url);" }
})
console.log(path.join(out, 'dm.js'))
