import '../../src/polyfill.ts'
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { waitFor } from '../helpers/wait.ts'
import { HostilePeer, forge, pushBody, varint, watchStream, type StreamOutcome } from '../helpers/hostile-peer.ts'
import { MessageType, MAX_INBOUND_STREAMS_BY_PROTOCOL, PROTOCOL_FETCH, PROTOCOL_PUSH } from '../../src/protocol/messages.ts'
import {
  FRAME_TIMEOUT_MS, c, n0, n1, h, nextTs, useHostileStage, snapshot, logLines, streamFailureLogged, honestRoundTrip, survived, closedOrAfter
} from '../helpers/hostile-stage.ts'

/*
 * Slow and stalling peers against real daemons: the frame timeout, per-protocol stream caps, fetches that stall or trickle.
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage()

// ---------------------------------------------------------------------------
// Slow and stalling peers

/** Idle streams opened per protocol: 12 times the per-connection cap (200 cost ~1 s more CPU for the same proof). */
const IDLE = 12 * Math.max(MAX_INBOUND_STREAMS_BY_PROTOCOL[PROTOCOL_PUSH], MAX_INBOUND_STREAMS_BY_PROTOCOL[PROTOCOL_FETCH])

test('a byte-a-second sender is cut after the frame timeout; idle streams are capped per protocol (push streams may idle, others are cut); honest traffic flows meanwhile', async t => {
  // End to end, with deadlines a loaded machine meets: the timeout to the millisecond is test/unit/channel.test.ts.
  const before = snapshot(n0)
  const from = n0.log.length
  // The slowloris: a frame announced as 1000 bytes, delivered one byte per second on a push stream.
  const slow = await h.openStream(n0.peerId, PROTOCOL_PUSH)
  const slowStarted = Date.now()
  const slowOutcome = watchStream(slow, 60_000)
  await h.write(slow, varint(1000))
  const drip = setInterval(() => { if (slow.status === 'open') slow.send(Uint8Array.of(7)) }, 1000)
  // IDLE streams of each protocol opened at once that never send a byte, many times the per-connection cap.
  // (Wrapped: an async function would flatten the outcome promise.)
  const idle = async (protocol: string) => await Promise.all(Array.from({ length: IDLE }, async () => {
    try {
      const s = await h.openStream(n0.peerId, protocol)
      return { stream: s as typeof s | undefined, outcome: watchStream(s, 60_000) }
    } catch {
      return { stream: undefined, outcome: Promise.resolve(undefined) } // refused during negotiation: also a refusal
    }
  }))
  let idlePush: Awaited<ReturnType<typeof idle>> = []
  try {
    const [pushes, idleFetch] = await Promise.all([idle(PROTOCOL_PUSH), idle(PROTOCOL_FETCH)])
    idlePush = pushes
    // While the daemon holds its quota of this peer's streams, honest peers are served.
    await honestRoundTrip(n1, n0)
    await honestRoundTrip(n0, n1)
    const slowEnd = await slowOutcome
    const slowMs = Date.now() - slowStarted
    assert.equal(slowEnd.how, 'reset', 'the slowloris stream is reset (1000 bytes at a byte a second would take 1000 s)')
    assert.ok(slowMs >= FRAME_TIMEOUT_MS - 1000, `slowloris cut after ${slowMs} ms, before the frame timeout`)

    // Push streams live as long as their connection: idle ones are held (still open once the slowloris,
    // past the frame timeout, was cut), but only up to the per-connection cap; the rest were refused.
    const pushHeld = idlePush.filter(x => x.stream?.status === 'open').length
    assert.ok(pushHeld <= MAX_INBOUND_STREAMS_BY_PROTOCOL[PROTOCOL_PUSH], `${pushHeld} idle push streams held`)
    const pushRefused = await Promise.all(idlePush.filter(x => x.stream?.status !== 'open').map(async x => (await x.outcome)?.how ?? 'reset'))
    assert.ok(pushRefused.every(how => how === 'reset'), `push streams beyond the cap are refused: ${JSON.stringify(pushRefused)}`)
    // A fetch stream must carry a request: idle ones are all cut, those held by the timeout (the daemon logs each), at most the cap.
    const fetch = (await Promise.all(idleFetch.map(async x => await x.outcome))).filter((o): o is StreamOutcome => o !== undefined)
    assert.ok(fetch.every(o => o.how === 'reset'), `idle fetch streams: ${JSON.stringify(fetch.map(o => o.how))}`)
    const timedOut = (): number => logLines(n0, from).filter(l => l.protocol === 'fetch' && l.code === 'ERR_TIMEOUT').length
    await waitFor('the held fetch streams logged as timed out', () => timedOut() > 0)
    assert.ok(timedOut() <= MAX_INBOUND_STREAMS_BY_PROTOCOL[PROTOCOL_FETCH], `${timedOut()} idle fetch streams were held until the frame timeout`)
    t.diagnostic(`slowloris cut after ${slowMs} ms; of ${IDLE} idle push streams ${pushHeld} held; of ${IDLE} idle fetch streams ${timedOut()} held until the frame timeout`)
  } finally {
    clearInterval(drip)
    // Give the held push slots back, so the attacker's next pushes are not refused.
    for (const x of idlePush) x.stream?.abort(new Error('done'))
    slow.abort(new Error('done'))
  }
  await streamFailureLogged(n0, from, 'ERR_TIMEOUT')
  await survived(before, { from })
})

test('a peer that stops halfway through a transfer and closes: nothing is written, the real version arrives from an honest peer', async () => {
  const before = snapshot(n0)
  const from = n0.log.length
  const real = randomBytes(600 * 1024)
  const v = c.sign('half.bin', real, nextTs())
  h.onFetch(async ctx => {
    await ctx.sendVersion(v, real, { chunkBytes: 60 * 1024, chunks: 5 })
    await ctx.stream.close()
  })
  try {
    const served = h.fetchesServed
    await h.push(n0.peerId, pushBody(v, undefined))
    await waitFor('fetch served', () => h.fetchesServed > served)
    await streamFailureLogged(n0, from, 'ERR_DECODE')
  } finally {
    h.onFetch(undefined)
  }
  await survived(before, { from })
  assert.equal(n0.file('half.bin'), undefined)
  await n1.submit(v, real)
  await waitFor('half.bin on n0', () => n0.file('half.bin')?.equals(real) === true)
})

// Two tests of 20 s each, run side by side: n0 is the victim of the first, n1 of the second.
describe('stalling and trickling peers', { concurrency: true }, () => {
  test('a peer that stalls halfway through a transfer does not keep the daemon from getting the version from an honest peer', async () => {
    const real = randomBytes(600 * 1024)
    const v = c.sign('stall.bin', real, nextTs())
    h.onFetch(async ctx => {
      await ctx.sendVersion(v, real, { chunkBytes: 60 * 1024, chunks: 5 })
      await closedOrAfter(ctx.stream, 60_000)
    })
    try {
      const served = h.fetchesServed
      await h.push(n0.peerId, pushBody(v, undefined))
      await waitFor('fetch served', () => h.fetchesServed > served)
      // The honest n1 now has it and pushes it to n0 at once.
      await n1.submit(v, real)
      // Well before libp2p's own 120 s inactivity cut: only the frame timeout can have freed the fetch.
      await waitFor('stall.bin on n0 (a frame timeout later)', () => n0.file('stall.bin')?.equals(real) === true, 30_000, 100)
    } finally {
      h.onFetch(undefined)
      h.resetAll()
    }
  })

  test('a peer trickling fetch answers cannot hold every fetch slot of the daemon', async () => {
    // Side by side with the test above, so the victim here is n1 and the trickler a second hostile peer.
    const h2 = await HostilePeer.start()
    await h2.connect(n1.addr)
    const junk = forge({ name: 'hello.txt', content: Buffer.alloc(10 * 1024 * 1024), key: c.key, timestampMs: nextTs(), corruptSignature: true })
    h2.onFetch(async ctx => {
      await ctx.send({ type: MessageType.Version, version: junk })
      while (ctx.stream.status === 'open') {
        await ctx.send({ type: MessageType.Chunk, data: Uint8Array.of(1) })
        await closedOrAfter(ctx.stream, 5000)
      }
    })
    const real = randomBytes(200 * 1024)
    try {
      // No signature needed: an index entry claiming a newer hello.txt is enough to be fetched from.
      for (let i = 0; i < 4; i++) await h2.pushPull(n1.peerId, [{ name: 'hello.txt', timestampMs: nextTs() + 3_600_000, id: randomBytes(32) }])
      await waitFor('4 fetches trickling', () => h2.fetchesServed >= 4)
      await n0.submit(c.sign('slot.bin', real, nextTs()), real)
      // 30 s: under the ~41 s its 10 MiB is allowed at the minimum transfer rate, so the trickler was not cut first.
      await waitFor('slot.bin on n1 while the trickler still holds its fetches', () => n1.file('slot.bin')?.equals(real) === true, 30_000, 100)
    } finally {
      await h2.stop()
      // Once the trickling streams are gone, the queued honest fetch goes through.
      await waitFor('slot.bin on n1 after the trickler left', () => n1.file('slot.bin')?.equals(real) === true, 20_000).catch(() => {})
    }
  })
})
