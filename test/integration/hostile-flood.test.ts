import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { forge, pushBody } from '../helpers/hostile-peer.ts'
import { MAX_INLINE_BYTES, MAX_INBOUND_STREAMS_BY_PROTOCOL, PROTOCOL_PUSH } from '../../src/protocol/messages.ts'
import {
  RSS_BOUND_MIB, STATUS_BOUND_MS, c, n0, h, nextTs, useHostileStage, snapshot, refusalLogged, rssMiB, rssSampler, survived, hello
} from '../helpers/hostile-stage.ts'

/*
 * A flood of pushes against a real daemon (alone in its file: the heaviest hostile test, started first by test/run.mjs).
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage()

// ---------------------------------------------------------------------------
// Floods

test('a flood of thousands of pushes leaves the daemon answering, with bounded memory', async t => {
  const before = snapshot(n0)
  const from = n0.log.length
  const held = hello()
  const big = randomBytes(MAX_INLINE_BYTES)
  const bodies = [
    pushBody(forge({ name: 'hello.txt', content: big, key: c.key, timestampMs: nextTs(), corruptSignature: true }), big), // costs a verify
    pushBody(forge({ name: 'flood.txt', content: big, key: c.key, timestampMs: nextTs() }), big), // unlisted name
    pushBody(c.sign('hello.txt', Buffer.from('old'), 1000), Buffer.from('old')), // stale
    pushBody(c.sign('hello.txt', big, nextTs()), Buffer.alloc(big.length)) // content mismatch: costs a hash
  ]
  const PUSHES = 2000
  const baseline = rssMiB(n0)
  const rss = rssSampler(n0)
  let maxStatusMs = 0
  let done = false
  const statusPoller = (async () => {
    while (!done) {
      const t = Date.now()
      await n0.api('/v1/status')
      maxStatusMs = Math.max(maxStatusMs, Date.now() - t)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })()
  const outcomes = { closed: 0, reset: 0, open: 0, failed: 0 }
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < PUSHES; i = next++) {
      try {
        outcomes[(await h.push(n0.peerId, bodies[i % bodies.length])).how]++
      } catch {
        outcomes.failed++
      }
    }
  }
  const t0 = Date.now()
  try {
    // As many senders at once as the daemon admits push streams from one connection.
    await Promise.all(Array.from({ length: MAX_INBOUND_STREAMS_BY_PROTOCOL[PROTOCOL_PUSH] }, worker))
  } finally {
    done = true
    await statusPoller
  }
  const elapsed = Date.now() - t0
  const peak = rss.stop()
  assert.ok(peak < RSS_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB`)
  assert.ok(maxStatusMs < STATUS_BOUND_MS, `status took up to ${maxStatusMs} ms during the flood`)
  assert.ok(outcomes.closed > PUSHES * 0.9, `outcomes ${JSON.stringify(outcomes)}`)
  await refusalLogged(n0, from, 'ERR_CONTENT_MISMATCH', 100)
  await survived(before, { from, codes: ['ERR_BAD_SIGNATURE', 'ERR_NAME_NOT_ALLOWED', 'ERR_STALE'] })
  assert.deepEqual(hello(), held)
  t.diagnostic(`push flood: ${PUSHES} pushes in ${elapsed} ms (${JSON.stringify(outcomes)}), peak RSS ${peak.toFixed(0)} MiB (from ${baseline.toFixed(0)})`)
})
