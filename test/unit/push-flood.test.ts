import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import v8 from 'node:v8'
import vm from 'node:vm'
import type { Stream } from '@libp2p/interface'
import { LOCAL_PROFILE } from '../../src/config/tuning.ts'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion } from '../../src/format/version.ts'
import type { MeshNode } from '../../src/net/node.ts'
import { libp2pTransport } from '../../src/net/transport.ts'
import { MAX_INBOUND_STREAMS_BY_PROTOCOL, MAX_INLINE_BYTES, PROTOCOL_PUSH } from '../../src/protocol/messages.ts'
import { openStore } from '../../src/store/store.ts'
import { createAcceptor } from '../../src/sync/acceptor.ts'
import { LOCAL_SOURCE, type Acceptor } from '../../src/sync/acceptor-api.ts'
import type { FetchService } from '../../src/sync/fetch.ts'
import { createPushService } from '../../src/sync/push.ts'
import { systemClock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { forge, frame, pushBody } from '../helpers/hostile-peer.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * A flood of pushes through the real push service, the real libp2p transport
 * adapter (its per-protocol stream limits and frame bounds) and the real
 * acceptor and store, in this process: the attacker's streams are fakes that
 * hand over whatever the daemon reads. What a flood may cost is measured
 * directly: ingests under way, frames read ahead of them, and what is still
 * reachable once it is over. (hostile-input.test.ts floods a real daemon too,
 * with fewer pushes: the end-to-end proof that its API keeps answering.)
 */

const networkId = networkIdFrom('test-net')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))
const sign = (name: string, content: Uint8Array, timestampMs: number) => newVersion({ name, content, networkId, privateKey, signer, timestampMs })

/** The collector, callable once V8 is told to expose it (node runs without --expose-gc). */
function collector (): () => void {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}
const heldBytes = (): number => { const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers }

/**
 * One inbound push stream whose remote side has written `frames`. Each frame arrives as fresh bytes, as off
 * a socket; `arrived` sees each one, so the test can tell whether anything still holds it later.
 */
function attackerStream (frames: () => Uint8Array | undefined, arrived: (bytes: Uint8Array) => void): { stream: Stream, closed: Promise<void> } {
  let close = (): void => {}
  const closed = new Promise<void>(resolve => { close = resolve })
  const stream = {
    [Symbol.asyncIterator]: () => ({
      async next (): Promise<IteratorResult<Uint8Array>> {
        const f = frames()
        if (f === undefined) return { done: true, value: undefined }
        const bytes = Uint8Array.from(f)
        arrived(bytes)
        return { done: false, value: bytes }
      }
    }),
    send: () => true,
    close: async () => { close() },
    abort: (err: Error) => { throw err }
  }
  return { stream: stream as unknown as Stream, closed }
}

test('a push flood through the real push service: at most one ingest and one frame per stream at a time, and nothing of it kept', async t => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-push-flood-'))
  const store = await openStore(dir)
  try {
    const refusals = new Map<string, number>()
    const real = createAcceptor({ store, clock: systemClock, log: silentLog }, {
      policy: { networkId, allowlist: new Map([['hello.txt', [signer]]]), maxClockSkewMs: 60_000 },
      tuning: LOCAL_PROFILE
    })
    real.events.on('refused', ({ code }) => refusals.set(code, (refusals.get(code) ?? 0) + 1))
    const hello = Buffer.from('the honest version')
    assert.deepEqual(await real.ingest(sign('hello.txt', hello, Date.now()), hello, LOCAL_SOURCE), { ok: true })

    // Every ingest takes a turn of the event loop at least (as a busy disk would make it): a service
    // that did not wait for one before reading the next frame would run ahead here.
    let inFlight = 0
    let maxInFlight = 0
    let framesPulled = 0
    let finished = 0
    let maxReadAhead = 0
    const acceptor: Acceptor = {
      ...real,
      async ingest (v, content, source) {
        maxInFlight = Math.max(maxInFlight, ++inFlight)
        try {
          await new Promise(resolve => setImmediate(resolve))
          return await real.ingest(v, content, source)
        } finally { inFlight--; finished++ }
      }
    }

    let handler: ((stream: Stream, connection: unknown) => void) | undefined
    let streamCap: number | undefined
    const node = {
      getPeers: () => [],
      addEventListener: () => {},
      handle: async (protocol: string, h: typeof handler, o: { maxInboundStreams: number }) => { if (protocol === PROTOCOL_PUSH) { handler = h; streamCap = o.maxInboundStreams } }
    } as unknown as MeshNode
    const transport = libp2pTransport(node, { frameTimeoutMs: LOCAL_PROFILE.frameTimeoutMs })
    const fetch = { note: () => true, fetch: async () => {} } as unknown as FetchService
    const push = createPushService({ transport, acceptor, fetch, random: Math.random, clock: systemClock, log: silentLog }, LOCAL_PROFILE)
    await push.start()
    assert.equal(streamCap, MAX_INBOUND_STREAMS_BY_PROTOCOL[PROTOCOL_PUSH], 'libp2p is told the per-protocol stream cap')

    const big = randomBytes(MAX_INLINE_BYTES)
    const later = Date.now() + 1000
    const bodies = [
      pushBody(forge({ name: 'hello.txt', content: big, key: { privateKey, publicKey: signer }, timestampMs: later, corruptSignature: true }), big), // costs a verify
      pushBody(forge({ name: 'flood.txt', content: big, key: { privateKey, publicKey: signer }, timestampMs: later }), big), // unlisted name
      pushBody(sign('hello.txt', Buffer.from('old'), 1000), Buffer.from('old')), // stale
      pushBody(sign('hello.txt', big, later), Buffer.alloc(big.length)) // content mismatch: costs a hash
    ].map(frame)
    const PUSHES = 2000
    const STREAMS = streamCap as number
    let next = 0
    const frames = (): Uint8Array | undefined => next < PUSHES ? bodies[next++ % bodies.length] : undefined
    const gc = collector()
    gc()
    const before = heldBytes()
    const received: Array<WeakRef<ArrayBuffer>> = []
    const streams = Array.from({ length: STREAMS }, () => attackerStream(frames, bytes => {
      received.push(new WeakRef(bytes.buffer))
      framesPulled++
      maxReadAhead = Math.max(maxReadAhead, framesPulled - finished)
    }))
    for (const [i, s] of streams.entries()) handler?.(s.stream, { remotePeer: { toString: () => `attacker-${i}` } })
    await Promise.all(streams.map(async s => await s.closed))
    await push.stop()
    // Nothing of the flood is held once it is judged: no frame (by reference) and no copy (by volume).
    // The collector hands freed buffers back a moment after it runs, hence the wait.
    const kept = (): number => received.filter(r => r.deref() !== undefined).length
    const grownMiB = (): number => (heldBytes() - before) / 2 ** 20
    await waitFor('the flood released', () => { gc(); return kept() === 0 && grownMiB() < 32 }, 5000, 50).catch(() => {})

    t.diagnostic(`${PUSHES} pushes on ${STREAMS} streams: at most ${maxInFlight} ingests at once, ${maxReadAhead} frames read ahead; ${kept()} frames and ${grownMiB().toFixed(1)} MiB held after`)
    assert.equal(finished, PUSHES, 'every push was judged')
    assert.deepEqual(Object.fromEntries(refusals), { ERR_BAD_SIGNATURE: PUSHES / 4, ERR_NAME_NOT_ALLOWED: PUSHES / 4, ERR_STALE: PUSHES / 4, ERR_CONTENT_MISMATCH: PUSHES / 4 })
    assert.ok(maxInFlight <= STREAMS, `${maxInFlight} ingests at once from ${STREAMS} streams`)
    assert.ok(maxReadAhead <= STREAMS, `${maxReadAhead} frames read ahead of the acceptor from ${STREAMS} streams`)
    assert.equal(kept(), 0, 'frames still held after the flood')
    assert.ok(grownMiB() < 32, `${grownMiB().toFixed(1)} MiB still held after ${(PUSHES * MAX_INLINE_BYTES / 2 ** 20).toFixed(0)} MiB of pushes`)
    assert.deepEqual(fs.readFileSync(path.join(store.filesDir, 'hello.txt')), hello, 'the held version is untouched')
    await real.stop()
  } finally {
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
