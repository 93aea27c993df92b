import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion } from '../../src/format/version.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { createSyncEngine, type SyncEngine } from '../../src/sync/engine.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'
import { waitFor } from '../helpers/wait.ts'

// The sync engine over an in-memory transport: the same code the daemon runs, minus libp2p.

const networkId = networkIdFrom('unit')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))
const other = generateKeyPairSync('ed25519').privateKey
const otherSigner = rawPublicKey(createPublicKey(other))
const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }) })

interface Node { id: string, store: Store, engine: SyncEngine }

async function mesh (n: number, allow = [signer], fanout = 8): Promise<{ net: MemoryNetwork, nodes: Node[] }> {
  const net = new MemoryNetwork()
  const nodes: Node[] = []
  for (let i = 0; i < n; i++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-sync-'))
    dirs.push(dir)
    const store = await openStore(dir)
    const engine = createSyncEngine({
      store,
      transport: net.transport(`n${i}`),
      policy: { networkId, allowlist: new Map([['f', i === 0 ? [...allow, otherSigner] : allow], ['big', allow]]), maxClockSkewMs: 60_000 },
      pushFanout: fanout
    })
    await engine.start()
    nodes.push({ id: `n${i}`, store, engine })
  }
  return { net, nodes }
}

const sign = (name: string, content: Uint8Array, t: number, key = privateKey, pub = signer) =>
  newVersion({ name, content, networkId, privateKey: key, signer: pub, timestampMs: t })

test('a pushed version spreads along a line of nodes, hop by hop', async () => {
  const { net, nodes } = await mesh(4)
  for (let i = 0; i < 3; i++) net.connect(`n${i}`, `n${i + 1}`)
  const content = Buffer.from('hello')
  const r = await nodes[0].engine.publish(sign('f', content, Date.now()), content)
  assert.equal(r.ok, true)
  await waitFor('all nodes hold f', () => nodes.every(n => n.store.get('f') !== undefined), 5000)
})

test('content above the inline limit is fetched by the receiver of a push', async () => {
  const { net, nodes } = await mesh(2)
  net.connect('n0', 'n1')
  const content = randomBytes(300 * 1024)
  await nodes[0].engine.publish(sign('big', content, Date.now()), content)
  await waitFor('n1 holds big', async () => (await nodes[1].store.readContent('big'))?.equals(content) === true, 5000)
})

test('push-pull repairs what pushes missed, in both directions', async () => {
  const { net, nodes } = await mesh(2)
  const t = Date.now()
  const a = Buffer.from('a')
  const b = randomBytes(100 * 1024)
  await nodes[0].engine.publish(sign('f', a, t), a)
  await nodes[1].engine.publish(sign('big', b, t), b)
  net.connect('n0', 'n1')
  await nodes[0].engine.pushPull('n1')
  await waitFor('both hold both', () => nodes.every(n => n.store.get('f') !== undefined && n.store.get('big') !== undefined), 5000)
  assert.equal(nodes[0].engine.stats.rounds, 1)
})

test('a version the receiver\'s allowlist refuses is not stored and not passed on', async () => {
  const { net, nodes } = await mesh(3)
  net.connect('n0', 'n1')
  net.connect('n1', 'n2')
  const bad = Buffer.from('from a key only n0 trusts')
  assert.equal((await nodes[0].engine.publish(sign('f', bad, Date.now(), other, otherSigner), bad)).ok, true)
  const good = Buffer.from('marker')
  await nodes[0].engine.publish(sign('big', good, Date.now()), good)
  await waitFor('marker reaches n2', () => nodes[2].store.get('big') !== undefined, 5000)
  assert.equal(nodes[1].store.get('f'), undefined)
  assert.equal(nodes[2].store.get('f'), undefined)
})

test('an older version never replaces a newer one, by push or by push-pull', async () => {
  const { net, nodes } = await mesh(2)
  const t = Date.now()
  const old = Buffer.from('old')
  const fresh = Buffer.from('new')
  await nodes[0].engine.publish(sign('f', old, t), old)
  await nodes[1].engine.publish(sign('f', fresh, t + 1), fresh)
  net.connect('n0', 'n1')
  await nodes[1].engine.pushPull('n0')
  await waitFor('n0 takes the newer', async () => (await nodes[0].store.readContent('f'))?.equals(fresh) === true, 5000)
  assert.deepEqual(await nodes[1].store.readContent('f'), fresh)
})
