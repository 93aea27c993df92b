import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPairSync, createPublicKey, randomBytes } from 'node:crypto'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion, versionId, type SignedVersion } from '../../src/format/version.ts'
import { LAN_PROFILE } from '../../src/config/tuning.ts'
import { MessageType, PROTOCOL_FETCH } from '../../src/protocol/messages.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { LOCAL_SOURCE } from '../../src/sync/acceptor-api.ts'
import { createSync, type Sync } from '../../src/sync/index.ts'
import type { Channel, Transport } from '../../src/sync/transport.ts'
import { systemClock } from '../../src/util/clock.ts'
import { silentLog, type Log } from '../../src/util/log.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'
import { recordingLog } from './helpers.ts'

// Serving onward before the own commit (relay.ts): B, still receiving a
// version from A, serves it to C; if A's transfer to B fails midway, C's
// stream from B fails with ERR_UPSTREAM_FAILED and C fetches it elsewhere.

const networkId = networkIdFrom('unit-relay')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))
const NAME = 'big'
const dirs: string[] = []
const started: Sync[] = []
afterEach(async () => {
  for (const s of started.splice(0)) await s.stop()
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

async function node (net: MemoryNetwork, id: string, opts: { wrapStore?: (s: Store) => Store, wrapTransport?: (t: Transport) => Transport, log?: Log } = {}): Promise<{ sync: Sync, store: Store }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-relay-'))
  dirs.push(dir)
  const store = await openStore(dir)
  const transport = (opts.wrapTransport ?? (t => t))(net.transport(id))
  const sync = createSync({ store: (opts.wrapStore ?? (s => s))(store), transport, peers: { sample: () => [], learn: () => {}, onJoin: () => {}, wantsIntroductions: () => false }, clock: systemClock, random: Math.random, log: opts.log ?? silentLog }, {
    policy: { networkId, allowlist: new Map([[NAME, [signer]]]), maxClockSkewMs: 60_000 },
    tuning: { ...LAN_PROFILE, pushPullIntervalMs: 3_600_000 }
  })
  await sync.start()
  started.push(sync)
  return { sync, store }
}

/** Waits for `cond` to hold, failing after `ms`. */
async function until (cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

function gate (): { wait: Promise<void>, open: () => void } {
  let open = (): void => {}
  const wait = new Promise<void>(resolve => { open = resolve })
  return { wait, open }
}

/** A 1 MiB version published on `a` (4 chunks of 256 KiB on the wire). */
async function publishBig (a: { sync: Sync }): Promise<{ v: SignedVersion, content: Buffer }> {
  const content = randomBytes(1024 * 1024)
  const v = newVersion({ name: NAME, content, networkId, privateKey, signer, timestampMs: Date.now() })
  assert.ok((await a.sync.acceptor.ingest(v, content, LOCAL_SOURCE)).ok)
  return { v, content }
}

/** A store whose staged commits wait for `open` (the slow disk of the brief); `asked` counts them. */
function slowCommits (): { wrap: (s: Store) => Store, open: () => void, asked: () => number } {
  const commit = gate()
  let asked = 0
  const wrap = (s: Store): Store => new Proxy(s, {
    get: (target, key) => key === 'commitStaged'
      ? async (...args: Parameters<Store['commitStaged']>) => { asked++; await commit.wait; return await target.commitStaged(...args) }
      : target[key as keyof Store]
  })
  return { wrap, open: commit.open, asked: () => asked }
}

/** A new 1 MiB version and its content as the API hands a publish over: streamed, so it is staged and relayed as it lands. */
function bigUpload (): { v: SignedVersion, content: Buffer, upload: () => AsyncIterable<Uint8Array> } {
  const content = randomBytes(1024 * 1024)
  const v = newVersion({ name: NAME, content, networkId, privateKey, signer, timestampMs: Date.now() })
  async function * upload (): AsyncIterable<Uint8Array> { for (let at = 0; at < content.length; at += 256 * 1024) yield content.subarray(at, at + 256 * 1024) }
  return { v, content, upload }
}

const want = (v: SignedVersion): { name: string, id: Uint8Array, timestampMs: number } => ({ name: v.name, id: versionId(v), timestampMs: v.timestampMs })

/** Wraps fetch channels this transport opens to `peer`: `onRead` sees each frame read (or the error) and may hold it back. */
function watchFetch (peer: string, onRead: (frame: Uint8Array | undefined, err?: unknown) => Promise<void>): (t: Transport) => Transport {
  return t => ({
    ...t,
    open: async (to, protocol) => {
      const ch = await t.open(to, protocol)
      if (to !== peer || protocol !== PROTOCOL_FETCH) return ch
      const wrapped: Channel = {
        ...ch,
        read: async () => {
          let frame: Uint8Array | undefined
          try {
            frame = await ch.read()
          } catch (err) {
            await onRead(undefined, err)
            throw err
          }
          await onRead(frame)
          return frame
        }
      }
      return wrapped
    }
  })
}

test('a node serves a version it is still receiving before its own commit is done', async () => {
  const net = new MemoryNetwork()
  const a = await node(net, 'a')
  const commit = slowCommits()
  const b = await node(net, 'b', { wrapStore: commit.wrap })
  const c = await node(net, 'c')
  const { v, content } = await publishBig(a)
  net.connect('a', 'b')
  net.connect('b', 'c') // C has no link to A: what it gets, it gets from B

  const bFetch = b.sync.fetch.fetch('a', [want(v)])
  await until(() => commit.asked() === 1, 'B to receive the content and start its commit')
  // B sends the version on once it is verified (push), so C may be fetching it already: wait for it either way.
  await c.sync.fetch.fetch('b', [want(v)])
  await until(() => c.store.get(NAME) !== undefined, 'C to store it')
  assert.deepEqual(await c.store.readContent(NAME), content, 'C holds the content it got from B')
  assert.equal(b.store.get(NAME), undefined, 'B has not committed it yet')

  commit.open()
  await bFetch
  assert.deepEqual(await b.store.readContent(NAME), content)
})

test('a local publish of larger content is sent on once verified, before its own commit is done', async () => {
  const net = new MemoryNetwork()
  const commit = slowCommits()
  const a = await node(net, 'a', { wrapStore: commit.wrap })
  const b = await node(net, 'b')
  net.connect('a', 'b')
  const { v, content, upload } = bigUpload()
  const published = a.sync.acceptor.ingest(v, upload(), LOCAL_SOURCE)

  await until(() => commit.asked() === 1, "A's commit to start")
  await until(() => b.store.get(NAME) !== undefined, 'B to store it (pushed, then fetched from A)')
  assert.deepEqual(await b.store.readContent(NAME), content)
  assert.equal(a.store.get(NAME), undefined, 'A has not committed it yet')

  commit.open()
  assert.ok((await published).ok)
  assert.deepEqual(await a.store.readContent(NAME), content)
})

test('a local publish of larger content that fails its commit says it may have reached peers, which store it', async () => {
  const net = new MemoryNetwork()
  const failing = (s: Store): Store => new Proxy(s, {
    get: (target, key) => key === 'commitStaged' ? async () => { throw new Error('ENOSPC (injected)') } : target[key as keyof Store]
  })
  const a = await node(net, 'a', { wrapStore: failing })
  const b = await node(net, 'b')
  net.connect('a', 'b')
  const { v, content, upload } = bigUpload()
  const r = await a.sync.acceptor.ingest(v, upload(), LOCAL_SOURCE)
  assert.equal(r.ok, false)
  assert.equal(r.ok === false && r.code, 'ERR_STORE_IO')
  assert.match(r.ok === false ? r.reason : '', /may have reached peers/)
  assert.equal(a.store.get(NAME), undefined, 'A stored nothing')
  // It passed every rule and was sent on once verified; B fetched it from A's relay.
  await until(() => b.store.get(NAME) !== undefined, 'B to store it')
  assert.deepEqual(await b.store.readContent(NAME), content)
})

test('an upstream transfer failing midway fails the relayed stream with ERR_UPSTREAM_FAILED; the downstream fetches again elsewhere', async () => {
  const net = new MemoryNetwork()
  const a = await node(net, 'a')
  const cut = gate()
  let framesFromA = 0
  // B's fetch stream from A: the header and two chunks arrive, then the connection drops.
  const bLog = recordingLog()
  const b = await node(net, 'b', {
    log: bLog,
    wrapTransport: watchFetch('a', async frame => {
      if (frame === undefined) return
      if (++framesFromA > 3) { await cut.wait; throw new Error('connection reset') }
    })
  })
  let chunksFromB = 0
  let cutShort = false
  const c = await node(net, 'c', {
    wrapTransport: watchFetch('b', async (frame, err) => {
      // Reset (an error) or ended: either way C's stream from B stops short of the content.
      if (err !== undefined || frame === undefined) cutShort = true
      else if (frame[0] === MessageType.Chunk) chunksFromB++
    })
  })
  const { v, content } = await publishBig(a)
  net.connect('a', 'b')
  net.connect('b', 'c')
  net.connect('c', 'a')

  const bFetch = b.sync.fetch.fetch('a', [want(v)])
  await until(() => framesFromA >= 3, 'B to receive two chunks from A')
  const cFetch = c.sync.fetch.fetch('b', [want(v)])
  assert.ok(c.sync.fetch.note(versionId(v), 'a'), 'A is kept as another source')
  await until(() => chunksFromB >= 1, 'C to receive part of the content from B')

  cut.open()
  await bFetch
  await cFetch
  assert.ok(cutShort, "C's stream from B was cut short")
  // B resets the relayed stream with ERR_UPSTREAM_FAILED: a line on its side, not an accusation of C or A.
  assert.ok(bLog.lines.some(l => l.msg === 'stream failed' && l.level === 'info' && l.obj.code === 'ERR_UPSTREAM_FAILED' && l.obj.peer === 'c'), 'B logged the relayed stream to C as failed with ERR_UPSTREAM_FAILED')
  assert.ok(chunksFromB < 4, 'B never had the whole content to relay')
  assert.deepEqual(await c.store.readContent(NAME), content, 'C fetched it again from A')
  // C pushes what it verified on to B, which may already hold it by now: never a part of the failed transfer.
  if (b.store.get(NAME) !== undefined) assert.deepEqual(await b.store.readContent(NAME), content, 'B holds only the whole version, from C')
})
