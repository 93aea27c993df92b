// Writes the V8 code cache that bin/dm hands to V8 with a bundle: compiled
// code for the script and for every function that ran here, so `dm` skips
// most parsing and compiling.
//   node scripts/code-cache.cjs client   dist/client/client.cache: the client
//     verbs run against a throw-away config with no daemon.
//   node scripts/code-cache.cjs full     dist/full/dm.cache: `dm id`, then a
//     daemon on 127.0.0.1 (port 0) with a throw-away state directory, until
//     its API answers; in a child process, as a daemon holds handles.
// Output is discarded. V8 accepts a cache only from the same Node version and
// flags, and otherwise compiles as if there were none.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const vm = require('node:vm')

const BUNDLES = { client: 'dist/client/client', full: 'dist/full/dm' }
const what = process.argv[2]
const base = path.join(__dirname, '..', BUNDLES[what.replace(/-warm$/, '')])

/** Compiles and runs a bundle as bin/dm does; returns the script (for its cache) and main. */
function load () {
  const file = `${base}.js`
  const script = new vm.Script(fs.readFileSync(file, 'utf8'), { filename: file })
  const mod = { exports: {}, filename: file }
  script.runInThisContext()(require, mod)
  return { script, main: mod.exports.main }
}

/** Runs fn with stdout and stderr discarded, in a throw-away directory. */
async function quietly (fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-code-cache-'))
  const write = [process.stdout.write, process.stderr.write]
  process.stdout.write = process.stderr.write = () => true
  try {
    return await fn(dir)
  } finally {
    [process.stdout.write, process.stderr.write] = write
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function warmClient () {
  const { script, main } = load()
  await quietly(async dir => {
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, 'state_dir = "state"\n[api]\nsocket = "api.sock"\n')
    fs.writeFileSync(path.join(dir, 'f'), 'x')
    const key = path.join(dir, 'k')
    for (const argv of [['--help'], ['publish', '--help'], ['keygen', '--out', key], ['publish', path.join(dir, 'f'), '--key', key, '-c', config], ['status', '-c', config], ['list', '-c', config]]) {
      await main(argv)
    }
  })
  fs.writeFileSync(`${base}.cache`, script.createCachedData())
}

/** In the child: `dm id`, then a daemon until its API socket exists; then the cache, and exit. */
async function warmFull () {
  const { script, main } = load()
  const ready = await quietly(async dir => {
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, 'state_dir = "state"\n[network]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\nbootstrap = []\n[api]\nsocket = "api.sock"\n')
    await main(['id', '-c', config])
    let ended = false
    main(['daemon', '-c', config, '--log-format', 'json']).catch(() => {}).finally(() => { ended = true })
    for (const deadline = Date.now() + 30_000; Date.now() < deadline && !ended;) {
      if (fs.existsSync(path.join(dir, 'api.sock'))) return true
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    return false
  })
  fs.writeFileSync(`${base}.cache`, script.createCachedData())
  // Not fatal (a build sandbox may not let it listen): the cache then holds what compiled so far, and dm compiles the rest.
  if (!ready) process.stderr.write('code-cache: the warm-up daemon did not start; the cache covers less of the daemon\n')
  process.exit(0)
}

if (what === 'client') {
  warmClient()
} else if (what === 'full') {
  // The same V8 flags as the daemon bin/dm starts, or V8 would refuse the cache (bin/dm re-executes with them on Node 22+).
  const flags = typeof process.execve === 'function' ? ['--max-semi-space-size=16'] : []
  const r = spawnSync(process.execPath, [...flags, __filename, 'full-warm'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 })
  if (r.status !== 0) throw new Error(`code-cache: warming the full bundle failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`)
} else if (what === 'full-warm') {
  warmFull()
} else {
  throw new Error(`usage: node scripts/code-cache.cjs client|full (got ${what})`)
}
