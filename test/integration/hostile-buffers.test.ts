import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { waitFor } from '../helpers/wait.ts'
import { forge, frame, pushBody, varint, watchStream } from '../helpers/hostile-peer.ts'
import { MAX_FRAME_BYTES, PROTOCOL_FETCH, PROTOCOL_PUSH, PROTOCOL_PUSH_PULL } from '../../src/protocol/messages.ts'
import {
  FRAME_TIMEOUT_MS, RSS_BOUND_MIB, c, useHostileStage, rssMiB, rssSampler, assertAlive, victim
} from '../helpers/hostile-stage.ts'

/*
 * Resources a peer may try to exhaust on a real daemon: stream buffers.
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage({ pair: false })

// ---------------------------------------------------------------------------
// Memory held by streams: each on a fresh daemon, since RSS once grown stays grown.

test('bytes a peer keeps sending after a complete push frame are not buffered without bound', async t => {
  const { node, peer } = await victim()
  try {
    const s = await peer.openStream(node.peerId, PROTOCOL_PUSH)
    const outcome = watchStream(s, 60_000)
    let ended = false
    s.addEventListener('close', () => { ended = true })
    await peer.write(s, frame(pushBody(forge({ name: 'not-listed.txt', content: Buffer.from('x'), key: c.key }), Buffer.from('x'))))
    const junk = Buffer.alloc(1 << 20, 7)
    const rss = rssSampler(node)
    let sentMiB = 0
    while (!ended && sentMiB < 512 && rssMiB(node) < RSS_BOUND_MIB + 10) {
      try { await peer.write(s, junk) } catch { break }
      sentMiB++
    }
    const peak = rss.stop()
    const how = (await Promise.race([outcome, Promise.resolve(undefined)]))?.how ?? 'open'
    t.diagnostic(`sent ${sentMiB} MiB after the push frame; the daemon ${ended ? 'reset the stream' : `never reset the stream (our view: ${how})`}; peak RSS ${peak.toFixed(0)} MiB`)
    assert.ok(peak < RSS_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB after ${sentMiB} MiB sent`)
    await assertAlive(node)
  } finally {
    await peer.stop()
    await node.stop()
  }
})

test('partial frames on every stream a peer may open cannot exhaust memory', async t => {
  const { node, peer } = await victim()
  const rss = rssSampler(node)
  const part = Buffer.alloc(MAX_FRAME_BYTES - 64, 1)
  try {
    const outcomes = Array.from({ length: 96 }, async (_, i) => {
      const s = await peer.openStream(node.peerId, [PROTOCOL_PUSH, PROTOCOL_FETCH, PROTOCOL_PUSH_PULL][i % 3])
      const o = watchStream(s, FRAME_TIMEOUT_MS + 5000)
      try {
        await peer.write(s, varint(MAX_FRAME_BYTES))
        await peer.write(s, part)
      } catch {}
      return await o
    })
    // Stop as soon as the bound is crossed, or when the daemon has dealt with every stream.
    let all = false
    void Promise.allSettled(outcomes).then(() => { all = true })
    await waitFor('streams dealt with or bound crossed', () => all || rssMiB(node) > RSS_BOUND_MIB + 10, FRAME_TIMEOUT_MS + 10_000, 50)
    const peak = rss.stop()
    t.diagnostic(`96 streams x ${(part.length / 1048576).toFixed(0)} MiB partial frames: peak RSS ${peak.toFixed(0)} MiB`)
    assert.ok(peak < RSS_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB`)
    await assertAlive(node)
  } finally {
    rss.stop()
    await peer.stop()
    await node.stop()
  }
})
