import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { startApiServer, type ApiHandlers } from '../../src/api/server.js'
import type { StatusInfo, VersionInfo } from '../../src/api/wire.js'
import { REPO_ROOT, tempDir } from './helpers.js'

/*
 * The built dm against an in-process API server with stub handlers: exit
 * codes, get's hash check, list NAME, status health, and the key and file
 * handling that needs no daemon.
 */

const DM = path.join(REPO_ROOT, 'bin/dm')

interface Run { code: number, stdout: string, stderr: string }

async function dm (args: string[], opts: { env?: Record<string, string>, uid?: number } = {}): Promise<Run> {
  return await new Promise(resolve => {
    const env = { ...process.env, ...opts.env }
    delete env.DM_CONFIG
    if (opts.env?.DM_CONFIG !== undefined) env.DM_CONFIG = opts.env.DM_CONFIG
    execFile(process.execPath, [DM, ...args], { env, uid: opts.uid, gid: opts.uid, timeout: 30_000, encoding: 'buffer' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout: stdout.toString('latin1'), stderr: stderr.toString() })
    })
  })
}

const CONTENT = Buffer.from('zone data\n')
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

function info (name: string, state: VersionInfo['state'], content = CONTENT): VersionInfo {
  return { name, size: content.length, timestampMs: 1_800_000_000_000, signedAt: new Date(1_800_000_000_000).toISOString(), expiresAtMs: 0, signer: 'P6AE0lukf9/qmVglYrGPNYo5ZnpFrnqLeAzlCZF0lTk=', sha256: sha(content), id: 'ab'.repeat(32), tombstone: state === 'tombstoned', present: state === 'present', state }
}

const STATUS: StatusInfo = { peerId: 'p', listen: [], network: 'n', uptimeMs: 1000, peersConnected: 0, peersKnown: 1, files: 1, syncRounds: 0, lastSyncAtMs: null, lastSyncDurationMs: null }

async function withStub (over: Partial<ApiHandlers>, fn: (config: string, dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('dm-cli-')
  const config = path.join(dir, 'dm.toml')
  fs.writeFileSync(config, 'state_dir = "state"\n[api]\nsocket = "run/api.sock"\n')
  const api = await startApiServer(path.join(dir, 'run', 'api.sock'), {
    publish: async () => ({ ok: true, committed: true }),
    list: () => [info('dns/cnames', 'present'), info('gone', 'tombstoned'), info('old', 'expired')],
    peers: () => [],
    status: () => STATUS,
    content: async name => name === 'dns/cnames' ? CONTENT : undefined,
    ...over
  })
  try { await fn(config, dir) } finally { await api.close(); cleanup() }
}

test('dm get prints or writes the content; not held, deleted or expired exits 5; a hash mismatch exits 1', async () => {
  await withStub({}, async (config, dir) => {
    const out = await dm(['get', 'dns/cnames', '--config', config])
    assert.equal(out.code, 0, out.stderr)
    assert.equal(out.stdout, CONTENT.toString('latin1'))
    const file = path.join(dir, 'copy')
    assert.equal((await dm(['get', 'dns/cnames', '-o', file, '--config', config])).code, 0)
    assert.deepEqual(fs.readFileSync(file), CONTENT)
    for (const name of ['nope', 'gone', 'old']) {
      const r = await dm(['get', name, '--config', config])
      assert.equal(r.code, 5, `${name}: ${r.stderr}`)
      assert.equal(r.stderr.trim().split('\n').length, 1)
    }
    // DM_CONFIG stands in for --config.
    assert.equal((await dm(['get', 'dns/cnames'], { env: { DM_CONFIG: config } })).code, 0)
  })
  await withStub({ content: async () => Buffer.from('tampered\n') }, async config => {
    const r = await dm(['get', 'dns/cnames', '--config', config])
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '', 'nothing unverified is printed')
    assert.match(r.stderr, /SHA-256/)
  })
})

test('dm list shows STATE and EXPIRES; dm list NAME shows one entry in detail or exits 5', async () => {
  await withStub({}, async config => {
    const all = await dm(['list', '--config', config])
    assert.equal(all.code, 0, all.stderr)
    const [head, ...rows] = all.stdout.trim().split('\n')
    assert.deepEqual(head.split(/\s+/), ['NAME', 'STATE', 'SIZE', 'SIGNED', 'EXPIRES', 'SIGNER'])
    assert.match(rows.find(r => r.startsWith('old')) ?? '', /^old\s+expired\s/)
    assert.match(rows.find(r => r.startsWith('gone')) ?? '', /^gone\s+tombstoned\s/)
    const one = await dm(['list', 'dns/cnames', '--config', config])
    assert.equal(one.code, 0)
    for (const field of ['state', 'signer', 'signed', 'expires', 'id', 'sha256']) assert.match(one.stdout, new RegExp(`^${field}\\s`, 'm'))
    const json = JSON.parse((await dm(['list', 'old', '--json', '--config', config])).stdout) as VersionInfo
    assert.equal(json.state, 'expired')
    assert.equal(json.present, false)
    assert.equal((await dm(['list', 'nope', '--config', config])).code, 5)
  })
})

test('dm status exits 4 with the reasons when the node is degraded, 0 when ok', async () => {
  await withStub({ status: () => ({ ...STATUS, health: { state: 'degraded', reasons: ['no peer connected; bootstrap is configured'] } }) }, async config => {
    const r = await dm(['status', '--config', config])
    assert.equal(r.code, 4)
    assert.match(r.stdout, /degraded: no peer connected/)
    assert.equal((await dm(['status', '--json', '--config', config])).code, 4)
  })
  await withStub({ status: () => ({ ...STATUS, health: { state: 'ok', reasons: [] } }) }, async config => {
    assert.equal((await dm(['status', '--config', config])).code, 0)
  })
})

test('no daemon: exit 3 in one line', async () => {
  const { dir, cleanup } = tempDir('dm-cli-nod-')
  try {
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, '[api]\nsocket = "api.sock"\n')
    const r = await dm(['status', '--config', config])
    assert.equal(r.code, 3)
    assert.equal(r.stderr.trim().split('\n').length, 1)
  } finally { cleanup() }
})

test('keygen creates a missing parent 0700; a public key as --key gets one clear line; sign --out never overwrites without --force', async () => {
  const { dir, cleanup } = tempDir('dm-cli-keys-')
  try {
    const key = path.join(dir, 'new', 'deeper', 'admin.pem')
    const kg = await dm(['keygen', '--out', key])
    assert.equal(kg.code, 0, kg.stderr)
    assert.equal(fs.statSync(path.dirname(key)).mode & 0o777, 0o700)
    assert.equal(fs.statSync(key).mode & 0o777, 0o600)
    const pub = path.join(dir, 'admin.pub')
    fs.writeFileSync(pub, kg.stdout)
    const file = path.join(dir, 'motd')
    fs.writeFileSync(file, 'hi\n')
    const wrong = await dm(['sign', file, '--key', pub, '--out', path.join(dir, 'x.sig')])
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /^dm: key .* is a public key; --key needs the private key file/)
    assert.equal(wrong.stderr.trim().split('\n').length, 1)
    const sig = path.join(dir, 'motd.sig')
    assert.equal((await dm(['sign', file, '--key', key, '--out', sig, '--ttl', '4h'])).code, 0)
    const before = fs.readFileSync(sig)
    const again = await dm(['sign', file, '--key', key, '--out', sig])
    assert.equal(again.code, 2)
    assert.deepEqual(fs.readFileSync(sig), before, 'not overwritten')
    assert.equal((await dm(['sign', file, '--key', key, '--out', sig, '--force'])).code, 0)
    assert.notDeepEqual(fs.readFileSync(sig), before)
  } finally { cleanup() }
})

test('dm id as a user who cannot create state_dir: one line naming state_dir', { skip: process.getuid?.() === 0 ? false : 'needs root to run as another user' }, async t => {
  // The other user must be able to read the checkout and node (not so under a private 0700 directory); that is
  // checked with node alone, so a dm that fails as another user still fails this test.
  const readable = await new Promise<boolean>(resolve => execFile(process.execPath, ['-e', `require('fs').accessSync(${JSON.stringify(DM)}, require('fs').constants.R_OK)`], { uid: 65534, gid: 65534 }, err => resolve(err === null)))
  if (!readable) { t.skip('this checkout (or node) is not readable by uid 65534'); return }
  const { dir, cleanup } = tempDir('dm-cli-eacces-')
  try {
    fs.chmodSync(dir, 0o755)
    const locked = path.join(dir, 'locked')
    fs.mkdirSync(locked, { mode: 0o755 })
    const config = path.join(dir, 'dm.toml')
    fs.writeFileSync(config, `state_dir = ${JSON.stringify(path.join(locked, 'state'))}\n`)
    const r = await dm(['id', '--config', config], { uid: 65534 })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^dm: state_dir: permission denied on /)
    assert.doesNotMatch(r.stderr, /unexpected error/)
  } finally { cleanup() }
})
