// Bundles the CLI and daemon into dist/ (see the README's layout table), as two
// CommonJS scripts, each with a V8 code cache made at build time
// (scripts/code-cache.cjs), which bin/dm compiles itself:
// - dist/full/dm.js: every verb, libp2p and the daemon; bin/dm runs `daemon`,
//   `id`, `config` and `network` from it. One minified bundle instead of ~400
//   node_modules files cuts the idle daemon's memory by about a fifth (V8
//   keeps every loaded module's source); the code cache cuts the CPU a
//   daemon takes to start by about a third. The daemon's modules are
//   dynamic imports, evaluated only when a verb needs them.
// - dist/client/client.js: the client verbs (publish, list, status, --help
//   ...), with no libp2p and no pino. It starts in about half the time of the
//   full bundle: one small file, and Node's built-in modules load on first use.
// Then writes the man page and bash completion from the CLI's command table.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import { builtinModules } from 'node:module'
import { build } from 'esbuild'
import { tsImport } from 'tsx/esm/api'

// Start clean: stale output from an earlier build would otherwise be packed.
fs.rmSync('dist', { recursive: true, force: true })

const common = { bundle: true, minify: true, platform: 'node', target: 'node20', logLevel: 'warning', metafile: true }

// A script, not a module: its value is a function that bin/dm calls with require and module.
const asScript = { banner: { js: '(function (require, module) {' }, footer: { js: '})' } }

/**
 * libp2p sorts protocol ids, multiaddrs and metadata keys with
 * String.prototype.localeCompare. Its first call loads ICU's collation data:
 * 2 MiB of the node binary's pages that then stay resident in every daemon
 * (counted from /proc/PID/pagemap against the binary's icudt symbol). Those
 * sorts only need one consistent order, so in the dependencies
 * `x.localeCompare(y)` becomes a comparison of UTF-16 code units. A call this
 * pattern does not match fails the build, so an upgrade that adds one is seen.
 */
const codeUnitSorts = {
  name: 'code-unit-sorts',
  setup (b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/].*\.[cm]?js$/ }, async a => {
      const text = await fs.promises.readFile(a.path, 'utf8')
      if (!text.includes('localeCompare')) return undefined
      const operand = '[\\w$.]+(?:\\(\\))?'
      const contents = text.replace(new RegExp(`(${operand})\\.localeCompare\\((${operand})\\)`, 'g'), '((x, y) => x < y ? -1 : x > y ? 1 : 0)($1, $2)')
      if (contents.includes('localeCompare')) throw new Error(`${a.path}: a localeCompare call the code-unit-sorts plugin cannot rewrite`)
      return { contents, loader: 'js' }
    })
  }
}

const full = await build({
  ...common,
  ...asScript,
  plugins: [codeUnitSorts],
  entryPoints: { dm: 'src/cli/entry.ts' },
  outdir: 'dist/full',
  format: 'cjs',
  // Dependencies written as ES modules read import.meta.url: here, the bundle's own URL.
  define: { 'import.meta.url': '__dmBundleUrl' },
  banner: { js: `${asScript.banner.js} const __dmBundleUrl = require('node:url').pathToFileURL(module.filename).href;` }
})

/** Built-in modules Node has loaded before any user code runs: importing them costs nothing. */
const PRELOADED = new Set(['buffer', 'events', 'fs', 'module', 'path', 'timers', 'url', 'util'])

/**
 * Node's built-in modules, as the client bundle sees them: an object that
 * inherits their members. esbuild's CommonJS output copies every own member
 * of a module into each file that imports it by default (about 1,600 property
 * definitions at start, fs alone 9 times); inherited members are not copied.
 * The built-ins Node has not loaded yet (crypto, child_process, net, os ...)
 * load on first use, through getters, so `dm --help` does not pay for crypto.
 * A built-in that is a function (events, stream, assert) is left as it is:
 * its default import must stay callable.
 */
const builtinsByPrototype = {
  name: 'builtins-by-prototype',
  setup (b) {
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, async a => {
      const name = a.path.replace(/^node:/, '')
      if (!builtinModules.includes(name) || typeof (await import(`node:${name}`)).default === 'function') return undefined
      return { path: name, namespace: 'builtin' }
    })
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, async a => {
      const load = `process.getBuiltinModule('node:${a.path}')`
      if (PRELOADED.has(a.path)) return { loader: 'js', contents: `module.exports = Object.create(${load})\n` }
      const keys = Object.keys(await import(`node:${a.path}`)).filter(k => k !== 'default')
      const getters = `Object.fromEntries(${JSON.stringify(keys)}.map(k => [k, { get: () => ${load}[k] }]))`
      return { loader: 'js', contents: `module.exports = Object.create(Object.create(null, ${getters}))\n` }
    })
  }
}

/**
 * The client bundle is one file, so a dynamic import would pull its target
 * (libp2p, the store) into it. Those imports serve the verbs bin/dm sends to
 * the full bundle; here they become a module that refuses to load.
 */
const noDynamicImports = {
  name: 'no-dynamic-imports',
  setup (b) {
    b.onResolve({ filter: /.*/ }, a => a.kind === 'dynamic-import' ? { path: a.path, namespace: 'not-in-client' } : undefined)
    b.onLoad({ filter: /.*/, namespace: 'not-in-client' }, a => ({
      loader: 'js',
      contents: `throw new Error(${JSON.stringify(`internal: ${a.path} is not in the client bundle; bin/dm must run this verb from the full bundle`)})\n`
    }))
  }
}

const client = await build({
  ...common,
  entryPoints: { client: 'src/cli/client-entry.ts' },
  outdir: 'dist/client',
  format: 'cjs',
  plugins: [builtinsByPrototype, noDynamicImports],
  ...asScript
})

// Which source files went into which output: the start-up test checks the client verbs load no libp2p or pino.
const chunks = Object.fromEntries([full, client].flatMap(r => Object.entries(r.metafile.outputs)).map(([out, o]) => [out, Object.keys(o.inputs)]))
fs.writeFileSync('dist/bundle-chunks.json', JSON.stringify(chunks))

// The code caches are made by this Node; another version ignores them and compiles instead.
execFileSync(process.execPath, ['scripts/code-cache.cjs', 'client'], { stdio: 'inherit' })
execFileSync(process.execPath, ['scripts/code-cache.cjs', 'full'], { stdio: 'inherit' })

// The man page and completion come from the same table as --help (read from the sources; tsc only type-checks).
const { commands } = await tsImport('../src/cli/main.ts', import.meta.url)
const { manPage, bashCompletion } = await tsImport('../src/cli/help.ts', import.meta.url)
fs.writeFileSync('dist/dm.1', manPage(commands))
fs.writeFileSync('dist/dm.bash', bashCompletion(commands))
