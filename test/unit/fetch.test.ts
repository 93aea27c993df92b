import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion, versionId, type SignedVersion } from '../../src/format/version.ts'
import { LAN_PROFILE } from '../../src/config/tuning.ts'
import { MessageType, PROTOCOL_FETCH, encodeMessage, expectType, decodeMessage } from '../../src/protocol/messages.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { LOCAL_SOURCE } from '../../src/sync/acceptor-api.ts'
import { createSync, type Sync } from '../../src/sync/index.ts'
import type { Transport } from '../../src/sync/transport.ts'
import { systemClock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'

// The fetch flow over the in-memory transport: small versions travel several
// to a Versions frame, and a peer that abuses that frame loses its stream.

const networkId = networkIdFrom('unit-fetch')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))
const NAMES = Array.from({ length: 40 }, (_, i) => `f${i}`)
const dirs: string[] = []
const started: Sync[] = []
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

/** A node whose allowlist holds NAMES; `wrap` sees its transport (to count frames). */
async function node (net: MemoryNetwork, id: string, wrap: (t: Transport) => Transport = t => t): Promise<{ sync: Sync, store: Store }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-fetch-'))
  dirs.push(dir)
  const store = await openStore(dir)
  const sync = createSync({ store, transport: wrap(net.transport(id)), peers: { sample: () => [], learn: () => {}, onJoin: () => {}, wantsIntroductions: () => false }, clock: systemClock, random: Math.random, log: silentLog }, {
    policy: { networkId, allowlist: new Map(NAMES.map(n => [n, [signer]])), maxClockSkewMs: 60_000 },
    tuning: { ...LAN_PROFILE, pushPullIntervalMs: 3_600_000 }
  })
  await sync.start()
  started.push(sync)
  return { sync, store }
}

const sign = (name: string, content: Uint8Array, t = Date.now()): SignedVersion => newVersion({ name, content, networkId, privateKey, signer, timestampMs: t })
const want = (v: SignedVersion): { name: string, id: Uint8Array, timestampMs: number } => ({ name: v.name, id: versionId(v), timestampMs: v.timestampMs })

/** Counts the message types of frames read on channels this transport opens. */
function counting (types: Map<number, number>): (t: Transport) => Transport {
  return t => ({
    ...t,
    open: async (peer, protocol) => {
      const ch = await t.open(peer, protocol)
      return { ...ch, read: async () => { const f = await ch.read(); if (f !== undefined) types.set(f[0], (types.get(f[0]) ?? 0) + 1); return f } }
    }
  })
}

test('small versions are fetched several to a Versions frame, tombstones and larger content alongside', async () => {
  const net = new MemoryNetwork()
  const server = await node(net, 'a')
  const types = new Map<number, number>()
  const client = await node(net, 'b', counting(types))
  // 37 of 12 KiB, one empty, one tombstone, one above the inline limit (Version + Chunk).
  const contents = NAMES.map((_, i) => i < 37 ? randomBytes(12 * 1024) : i === 39 ? randomBytes(100 * 1024) : new Uint8Array(0))
  const t = Date.now()
  const published = NAMES.map((n, i) => i === 38 ? newVersion({ name: n, networkId, privateKey, signer, timestampMs: t }) : sign(n, contents[i], t))
  // Published on the server before the two are connected, so nothing is pushed.
  const results = await Promise.all(published.map(async (v, i) => await server.sync.acceptor.ingest(v, contents[i], LOCAL_SOURCE)))
  assert.ok(results.every(r => r.ok))
  net.connect('a', 'b')
  await client.sync.fetch.fetch('a', published.map(want))
  for (const v of published) {
    const held = client.sync.acceptor.held(v.name)
    assert.ok(held !== undefined && Buffer.from(held.id).equals(versionId(v)), `${v.name} held`)
  }
  for (const i of [0, 36, 37, 39]) assert.deepEqual(await client.store.readContent(NAMES[i]), Buffer.from(contents[i]))
  // 39 small answers (about 450 KiB) in frames of at most 192 KiB; the large one as Version + Chunk.
  const batches = types.get(MessageType.Versions) ?? 0
  assert.ok(batches >= 3 && batches <= 4, `${batches} Versions frames`)
  assert.equal(types.get(MessageType.Version), 1)
  assert.equal(types.get(MessageType.Chunk), 1)
})

/** A peer that answers every Want with `frames`, then closes. */
function hostile (net: MemoryNetwork, frames: () => Uint8Array[]): void {
  void net.transport('evil').handle(PROTOCOL_FETCH, async ch => {
    expectType(decodeMessage(await ch.read() as Uint8Array), MessageType.Want)
    for (const f of frames()) await ch.send(f)
    await ch.close()
  })
}

test('a Versions frame that carries a forgery, an unasked name or an older version costs the peer its stream', async () => {
  const t = Date.now()
  const good = [0, 1, 2].map(i => sign(NAMES[i], Buffer.from(`v${i}`), t))
  const cases: Array<[string, (wanted: SignedVersion[]) => SignedVersion[], string | undefined]> = [
    ['forged signature', ws => [ws[0], { ...ws[1], signature: new Uint8Array(64).fill(7) }, ws[2]], 'ERR_BAD_SIGNATURE'],
    ['name not asked for', ws => [ws[0], sign(NAMES[30], Buffer.from('v30'), t), ws[2]], undefined],
    ['older than asked', ws => [ws[0], sign(NAMES[1], Buffer.from('v1'), t - 1000), ws[2]], undefined]
  ]
  for (const [what, tamper, code] of cases) {
    const net = new MemoryNetwork()
    const { sync: client } = await node(net, 'b')
    const refused: string[] = []
    client.acceptor.events.on('refused', e => refused.push(e.code))
    const sent = tamper(good)
    hostile(net, () => [encodeMessage({ type: MessageType.Versions, answers: sent.map(v => ({ version: v, content: Buffer.from(`v${NAMES.indexOf(v.name)}`) })) })])
    net.connect('evil', 'b')
    await client.fetch.fetch('evil', good.map(want)) // never rejects; resolves once the commits it started are done
    // The first answer was valid and is kept; nothing after the bad one is taken.
    assert.ok(client.acceptor.held(NAMES[0]) !== undefined, `${what}: the valid answer before the bad one is kept (${refused.join()})`)
    assert.equal(client.acceptor.held(NAMES[1]), undefined, `${what}: the bad answer is not stored`)
    assert.equal(client.acceptor.held(NAMES[2]), undefined, `${what}: the stream was dropped at the bad answer`)
    assert.equal(client.acceptor.held(NAMES[30]), undefined, what)
    if (code !== undefined) assert.ok(refused.includes(code), `${what}: refused with ${code}`)
  }
})

test('content that does not match its signed hash is refused and not stored', async () => {
  const net = new MemoryNetwork()
  const { sync: client } = await node(net, 'b')
  const refused: string[] = []
  client.acceptor.events.on('refused', e => refused.push(e.code))
  const v = sign(NAMES[0], Buffer.from('right'))
  hostile(net, () => [encodeMessage({ type: MessageType.Versions, answers: [{ version: v, content: Buffer.from('wrong') }] })])
  net.connect('evil', 'b')
  await client.fetch.fetch('evil', [want(v)])
  assert.equal(client.acceptor.held(NAMES[0]), undefined)
  assert.ok(refused.includes('ERR_CONTENT_MISMATCH'))
})
