import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { REPO_ROOT, tempDir } from './helpers.js'

/*
 * The client verbs must not load libp2p or pino: they are most of the
 * bundle, and loading them would multiply dm's start-up. A module hook
 * records every file the built dm loads; dist/bundle-chunks.json (written by
 * the build from esbuild's metafile) says which chunks hold those packages.
 */

const HEAVY = /node_modules\/(libp2p|@libp2p\/|@chainsafe\/|pino)/

function chunksWith (input: RegExp): Set<string> {
  const chunks = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'dist/bundle-chunks.json'), 'utf8')) as Record<string, string[]>
  return new Set(Object.entries(chunks).filter(([, inputs]) => inputs.some(i => input.test(i))).map(([out]) => path.join(REPO_ROOT, out)))
}

test('publish, list, status, get and --help load no libp2p or pino chunk; dm id loads libp2p (the check sees it) but not the daemon module', async () => {
  const heavy = chunksWith(HEAVY)
  const daemonModule = chunksWith(/^src\/daemon\/daemon\.ts$/)
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
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, 'state_dir = "state"\n[network]\nlisten = ["/ip4/127.0.0.1/tcp/7946"]\n[api]\nsocket = "api.sock"\n')
    fs.writeFileSync(path.join(dir, 'f'), 'x')
    const loadedBy = async (args: string[]): Promise<string[]> => {
      fs.writeFileSync(log, '')
      await new Promise<void>(resolve => execFile(process.execPath, ['--import', pathToFileURL(path.join(dir, 'register.mjs')).href, path.join(REPO_ROOT, 'bin/dm'), ...args], { timeout: 30_000 }, () => resolve()))
      return fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map(u => new URL(u).pathname)
    }
    for (const args of [['--help'], ['status', '-c', config], ['list', '-c', config], ['get', 'f', '-c', config], ['publish', path.join(dir, 'f'), '--sig', path.join(dir, 'f'), '-c', config]]) {
      const loaded = await loadedBy(args)
      assert.ok(loaded.some(p => p.endsWith('/dist/bundle/dm.js')), `the hook saw dm ${args[0]} load the bundle`)
      assert.deepEqual(loaded.filter(p => heavy.has(p)), [], `dm ${args[0]} loaded libp2p or pino`)
    }
    const id = await loadedBy(['id', '-c', config])
    assert.ok(id.some(p => heavy.has(p)), 'dm id loads libp2p: the check detects heavy chunks')
    assert.deepEqual(id.filter(p => daemonModule.has(p)), [], 'dm id does not load the daemon module')
  } finally { cleanup() }
})
