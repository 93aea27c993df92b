import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion, type SignedVersion } from '../../src/format/version.ts'
import { LAN_PROFILE } from '../../src/config/tuning.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { LOCAL_SOURCE } from '../../src/sync/acceptor-api.ts'
import { createSync, type Sync } from '../../src/sync/index.ts'
import { systemClock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'
import { waitFor } from '../helpers/wait.ts'

// The sync services over an in-memory transport: the same code the daemon runs, minus libp2p.

const networkId = networkIdFrom('unit')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))
const other = generateKeyPairSync('ed25519').privateKey
const otherSigner = rawPublicKey(createPublicKey(other))
const dirs: string[] = []

interface Node { id: string, store: Store, sync: Sync, publish: (v: SignedVersion, content: Uint8Array) => ReturnType<Sync['acceptor']['ingest']> }
const noPeers = { sample: () => [], learn: () => {}, onJoin: () => {}, wantsIntroductions: () => false }
const started: Sync[] = []
const stores: Store[] = []
// Services stopped, then the stores flushed and closed (no descriptor left to the GC), then their directories removed.
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop()
  for (const s of stores.splice(0)) { await s.flush(); await s.close() }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

async function mesh (n: number, allow = [signer], opts: { wrapStore?: (s: Store) => Store } = {}): Promise<{ net: MemoryNetwork, nodes: Node[] }> {
  const net = new MemoryNetwork()
  const nodes: Node[] = []
  for (let i = 0; i < n; i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-sync-'))
    dirs.push(dir)
    const opened = await openStore(dir)
    stores.push(opened)
    const store = opts.wrapStore?.(opened) ?? opened
    const sync = createSync({ store, transport: net.transport(`n${i}`), peers: noPeers, clock: systemClock, random: Math.random, log: silentLog }, {
      policy: { networkId, allowlist: new Map([['f', i === 0 ? [...allow, otherSigner] : allow], ['big', allow]]), maxClockSkewMs: 60_000 },
      // Rounds only when a test asks for one.
      tuning: { ...LAN_PROFILE, pushPullIntervalMs: 3_600_000 }
    })
    await sync.start()
    started.push(sync)
    nodes.push({ id: `n${i}`, store, sync, publish: async (v, content) => await sync.acceptor.ingest(v, content, LOCAL_SOURCE) })
  }
  return { net, nodes }
}

const sign = (name: string, content: Uint8Array, t: number, key = privateKey, pub = signer) =>
  newVersion({ name, content, networkId, privateKey: key, signer: pub, timestampMs: t })

test('a pushed version spreads along a line of nodes, hop by hop', async () => {
  const { net, nodes } = await mesh(4)
  for (let i = 0; i < 3; i++) net.connect(`n${i}`, `n${i + 1}`)
  const content = Buffer.from('hello')
  const r = await nodes[0].publish(sign('f', content, Date.now()), content)
  assert.equal(r.ok, true)
  await waitFor('all nodes hold f', () => nodes.every(n => n.store.get('f') !== undefined), 5000)
})

test('content above the inline limit is fetched by the receiver of a push', async () => {
  const { net, nodes } = await mesh(2)
  net.connect('n0', 'n1')
  const content = randomBytes(300 * 1024)
  await nodes[0].publish(sign('big', content, Date.now()), content)
  await waitFor('n1 holds big', async () => (await nodes[1].store.readContent('big'))?.equals(content) === true, 5000)
})

test('push-pull repairs what pushes missed, in both directions', async () => {
  const { net, nodes } = await mesh(2)
  const t = Date.now()
  const a = Buffer.from('a')
  const b = randomBytes(100 * 1024)
  await nodes[0].publish(sign('f', a, t), a)
  await nodes[1].publish(sign('big', b, t), b)
  net.connect('n0', 'n1')
  await nodes[0].sync.antiEntropy.round('n1')
  await waitFor('both hold both', () => nodes.every(n => n.store.get('f') !== undefined && n.store.get('big') !== undefined), 5000)
  assert.equal(nodes[0].sync.antiEntropy.stats.rounds, 1)
})

test('a version the receiver\'s allowlist refuses is not stored and not passed on', async () => {
  const { net, nodes } = await mesh(3)
  net.connect('n0', 'n1')
  net.connect('n1', 'n2')
  const bad = Buffer.from('from a key only n0 trusts')
  assert.equal((await nodes[0].publish(sign('f', bad, Date.now(), other, otherSigner), bad)).ok, true)
  const good = Buffer.from('marker')
  await nodes[0].publish(sign('big', good, Date.now()), good)
  await waitFor('marker reaches n2', () => nodes[2].store.get('big') !== undefined, 5000)
  assert.equal(nodes[1].store.get('f'), undefined)
  assert.equal(nodes[2].store.get('f'), undefined)
})

test('an older version never replaces a newer one, by push or by push-pull', async () => {
  const { net, nodes } = await mesh(2)
  const t = Date.now()
  const old = Buffer.from('old')
  const fresh = Buffer.from('new')
  await nodes[0].publish(sign('f', old, t), old)
  await nodes[1].publish(sign('f', fresh, t + 1), fresh)
  net.connect('n0', 'n1')
  await nodes[1].sync.antiEntropy.round('n0')
  await waitFor('n0 takes the newer', async () => (await nodes[0].store.readContent('f'))?.equals(fresh) === true, 5000)
  assert.deepEqual(await nodes[1].store.readContent('f'), fresh)
})

test('a small local publish whose commit fails is refused, keeps what was held, and never spreads', async () => {
  let failing = false
  let wrapped = 0
  const { net, nodes } = await mesh(2, [signer], {
    // Only n0's disk fails.
    wrapStore: s => wrapped++ > 0 ? s : { ...s, commit: async (v, c, o) => { if (failing) throw new Error('EIO (injected)'); return await s.commit(v, c, o) } }
  })
  net.connect('n0', 'n1')
  const t = Date.now()
  const before = Buffer.from('held before')
  assert.equal((await nodes[0].publish(sign('f', before, t), before)).ok, true)
  await waitFor('n1 holds the first version', () => nodes[1].store.get('f') !== undefined, 5000)
  failing = true
  const content = Buffer.from('small enough to ride inline')
  const r = await nodes[0].publish(sign('f', content, t + 1), content)
  assert.equal(r.ok, false)
  assert.equal(r.ok === false && r.code, 'ERR_STORE_IO')
  assert.deepEqual(await nodes[0].store.readContent('f'), before, 'the version held before is intact')
  // A marker published after it, once commits work, reaches n1 over the same push stream: the failed one was never sent.
  failing = false
  const marker = Buffer.from('marker')
  assert.equal((await nodes[0].publish(sign('big', marker, t + 2), marker)).ok, true)
  await waitFor('the marker reaches n1', () => nodes[1].store.get('big') !== undefined, 5000)
  assert.deepEqual(await nodes[1].store.readContent('f'), before, 'n1 never got the failed version')
})

test('a signer removed from the allowlist no longer blocks a replacement, and is no longer advertised', async () => {
  const { nodes } = await mesh(1)
  const t = Date.now()
  const mine = Buffer.from('by the other key')
  assert.equal((await nodes[0].publish(sign('f', mine, t, other, otherSigner), mine)).ok, true)
  assert.equal(nodes[0].sync.index.entries().length, 1)
  nodes[0].sync.acceptor.setPolicy({ networkId, allowlist: new Map([['f', [signer]], ['big', [signer]]]), maxClockSkewMs: 60_000 })
  assert.equal(nodes[0].sync.index.entries().length, 0, 'the revoked version is not advertised')
  const older = Buffer.from('older, but by a listed signer')
  assert.equal((await nodes[0].publish(sign('f', older, t - 1000), older)).ok, true)
  assert.deepEqual(await nodes[0].store.readContent('f'), older)
})

test('stop() waits for commits under way', async () => {
  let release = (): void => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  const { nodes } = await mesh(1, [signer], { wrapStore: s => ({ ...s, commit: async (v, c, o) => { await gate; return await s.commit(v, c, o) } }) })
  const content = Buffer.from('slow disk')
  const publishing = nodes[0].publish(sign('f', content, Date.now()), content)
  let stopped = false
  const stopping = nodes[0].sync.stop().then(() => { stopped = true })
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(stopped, false, 'stop() returned while a commit was under way')
  release()
  await stopping
  assert.equal((await publishing).ok, true)
  assert.deepEqual(await nodes[0].store.readContent('f'), content)
})
