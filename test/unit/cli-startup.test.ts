import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT, tempDir } from './helpers.js'

/*
 * The client verbs must not load libp2p or pino: they are most of the
 * bundle, and loading them would multiply dm's start-up. bin/dm runs the
 * client verbs from dist/client/client.js and the others from
 * dist/full/dm.js, scripts it reads and compiles itself.
 * dist/bundle-chunks.json (written by the build from esbuild's metafiles)
 * says which source files each output holds; a preload records the files dm
 * reads and a module hook every ES module it loads.
 */

const HEAVY = /node_modules\/(libp2p|@libp2p\/|@chainsafe\/|@multiformats\/|pino)/
const CLIENT = 'dist/client/client.js'
const FULL = 'dist/full/dm.js'

const outputs = (): Record<string, string[]> => JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'dist/bundle-chunks.json'), 'utf8')) as Record<string, string[]>

function chunksWith (input: RegExp): Set<string> {
  return new Set(Object.entries(outputs()).filter(([, inputs]) => inputs.some(i => input.test(i))).map(([out]) => path.join(REPO_ROOT, out)))
}

test('the client bundle holds the client verbs and no libp2p or pino', () => {
  const inputs = outputs()[CLIENT]
  assert.ok(inputs.includes('src/cli/client.ts') && inputs.includes('src/cli/help.ts'), 'the client bundle holds dm publish and the help')
  assert.deepEqual(inputs.filter(i => HEAVY.test(i) || i.startsWith('src/daemon/daemon.ts') || i.startsWith('src/net/')), [])
  assert.ok(Object.values(outputs()).some(i => i.some(f => HEAVY.test(f))), 'the check sees libp2p in the full bundle')
})

test('the full bundle never calls localeCompare, whose collation data would stay resident in every daemon', () => {
  const text = fs.readFileSync(path.join(REPO_ROOT, FULL), 'utf8')
  assert.equal(text.match(/localeCompare/g)?.length ?? 0, 0)
  assert.ok(text.includes('.multiaddr.toString())'), 'the check reads the bundle that holds libp2p-peer-store\'s address sort')
})

test('publish, list, status, get, fleet, wait, keygen and --help run from the client bundle and load no libp2p or pino; dm id runs from the full bundle', async () => {
  const heavy = chunksWith(HEAVY)
  assert.ok(heavy.size > 0, 'the bundle has libp2p/pino chunks')
  const { dir, cleanup } = tempDir('dm-startup-')
  try {
    const log = path.join(dir, 'loaded.txt')
    fs.writeFileSync(path.join(dir, 'hooks.mjs'), `import fs from 'node:fs'
export async function load (url, context, next) {
  if (url.startsWith('file:')) fs.appendFileSync(${JSON.stringify(log)}, url + '\\n')
  return await next(url, context)
}\n`)
    fs.writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(path.join(dir, 'hooks.mjs')).href)})\n`)
    // Files opened or read whole: bin/dm opens a bundle and reads it in pieces.
    fs.writeFileSync(path.join(dir, 'reads.cjs'), `const fs = require('node:fs')
for (const name of ['readFileSync', 'openSync']) {
  const original = fs[name]
  fs[name] = function (file, ...rest) {
    if (typeof file === 'string') fs.appendFileSync(${JSON.stringify(log)}, require('node:url').pathToFileURL(file).href + '\\n')
    return original.call(this, file, ...rest)
  }
}\n`)
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, 'state_dir = "state"\n[network]\nlisten = ["/ip4/127.0.0.1/tcp/7946"]\n[api]\nsocket = "api.sock"\n')
    fs.writeFileSync(path.join(dir, 'f'), 'x')
    const run = async (args: string[]): Promise<{ code: number, loaded: string[] }> => {
      fs.writeFileSync(log, '')
      const code = await new Promise<number>(resolve => execFile(process.execPath, ['--require', path.join(dir, 'reads.cjs'), '--import', pathToFileURL(path.join(dir, 'register.mjs')).href, path.join(REPO_ROOT, 'bin/dm'), ...args], { timeout: 30_000 }, err => {
        resolve(err === null ? 0 : typeof err.code === 'number' ? err.code : -1)
      }))
      return { code, loaded: fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map(u => new URL(u).pathname) }
    }
    const key = path.join(dir, 'k')
    // Exit statuses: 0, or 3 (no daemon) once the verb got as far as calling the daemon.
    for (const [args, status] of [[['--help'], 0], [['keygen', '--out', key], 0], [['status', '-c', config], 3], [['list', '-c', config], 3], [['get', 'f', '-c', config], 3], [['publish', path.join(dir, 'f'), '--key', key, '-c', config], 3], [['fleet', '-c', config], 3], [['wait', 'f', '-c', config], 3]] as const) {
      const { code, loaded } = await run([...args])
      assert.equal(code, status, `dm ${args.join(' ')} exit status`)
      assert.ok(loaded.includes(path.join(REPO_ROOT, CLIENT)), `dm ${args[0]} ran the client bundle`)
      assert.deepEqual(loaded.filter(p => heavy.has(p) || p === path.join(REPO_ROOT, FULL)), [], `dm ${args[0]} loaded the full bundle, libp2p or pino`)
    }
    const id = await run(['id', '-c', config])
    assert.ok(id.loaded.some(p => heavy.has(p)), 'dm id loads libp2p: the check detects heavy chunks')
    assert.ok(!id.loaded.includes(path.join(REPO_ROOT, CLIENT)), 'dm id runs from the full bundle')
  } finally { cleanup() }
})

/*
 * bin/dm reads the full bundle's code cache into a WebAssembly.Memory, and
 * the bundle in 64 KiB pieces (why: bin/dm); the client's, whole. V8 must still accept the cache: a truncated
 * or misread one is rejected silently, and every start then compiles.
 */
test('bin/dm hands V8 a code cache it accepts, for the client and the full bundle', async () => {
  const { dir, cleanup } = tempDir('dm-cache-')
  try {
    const log = path.join(dir, 'scripts.txt')
    fs.writeFileSync(path.join(dir, 'scripts.cjs'), `const vm = require('node:vm')
const fs = require('node:fs')
const Script = vm.Script
vm.Script = class extends Script {
  constructor (code, options) {
    super(code, options)
    fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ file: options.filename, cache: options.cachedData?.length ?? 0, rejected: this.cachedDataRejected }) + '\\n')
  }
}\n`)
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, 'state_dir = "state"\n[network]\nlisten = ["/ip4/127.0.0.1/tcp/7946"]\n[api]\nsocket = "api.sock"\n')
    for (const [args, bundle] of [[['--help'], CLIENT], [['id', '-c', config], FULL]] as const) {
      fs.writeFileSync(log, '')
      await new Promise<void>((resolve, reject) => execFile(process.execPath, ['--require', path.join(dir, 'scripts.cjs'), path.join(REPO_ROOT, 'bin/dm'), ...args], { timeout: 30_000 }, err => err === null ? resolve() : reject(err)))
      const scripts = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as { file: string, cache: number, rejected: boolean })
      const cacheSize = fs.statSync(path.join(REPO_ROOT, bundle.replace(/\.js$/, '.cache'))).size
      assert.deepEqual(scripts, [{ file: path.join(REPO_ROOT, bundle), cache: cacheSize, rejected: false }], `dm ${args[0]}`)
    }
  } finally { cleanup() }
})
