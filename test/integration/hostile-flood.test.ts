import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { forge, pushBody } from '../helpers/hostile-peer.ts'
import { createReconcileIndex } from '../../src/sync/fingerprint.ts'
import { MAX_INLINE_BYTES, MAX_INBOUND_STREAMS_BY_PROTOCOL, PROTOCOL_PUSH, type IndexEntry } from '../../src/protocol/messages.ts'
import {
  RSS_BOUND_MIB, STATUS_BOUND_MS, c, n0, h, nextTs, useHostileStage, snapshot, refusalLogged, rssMiB, rssSampler, survived, hello
} from '../helpers/hostile-stage.ts'

/*
 * Floods against a real daemon: reconciliations of 40,000 unknown entries, thousands of pushes.
 * The stage (daemons, attacker, the checks every attack ends with) is test/helpers/hostile-stage.ts.
 */

useHostileStage()

// ---------------------------------------------------------------------------
// Floods

test('a flood of reconciliations against 40,000 unknown entries leaves the daemon answering, with bounded memory', async t => {
  const FLOOD_ENTRIES = 40_000
  const before = snapshot(n0)
  const from = n0.log.length
  const entries: IndexEntry[] = []
  for (let i = 0; i < FLOOD_ENTRIES; i++) entries.push({ name: `flood/${i.toString(36).padStart(6, '0')}-${'x'.repeat(24)}`, timestampMs: 1e12 + i, id: randomBytes(32) })
  const index = createReconcileIndex(entries)
  // Some rounds also claim newer versions of listed names (fetched, answered NotFound) and push members at the daemon.
  const lying = createReconcileIndex([...entries.slice(0, FLOOD_ENTRIES - 3), ...['hello.txt', 'replay.txt', 'dns/cnames'].map(name => ({ name, timestampMs: nextTs() + 3_600_000, id: randomBytes(32) }))])
  // Members that do not exist: half with ids that do not parse, half real ids at addresses where nothing listens.
  const peers = await Promise.all(Array.from({ length: 32 }, async (_, i) => ({
    id: i % 2 === 0 ? `not-a-peer-${i}` : peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString(),
    addrs: ['/ip4/127.0.0.1/tcp/1', '/garbage', 'x'.repeat(200)]
  })))
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
  const ROUNDS = 16
  let next = 0
  // Three at once, one more than the daemon admits per connection: the extra stream is reset, which is the defence.
  let completed = 0
  let resets = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < ROUNDS; i = next++) {
      try {
        await h.pushPull(n0.peerId, i % 6 === 0 ? lying : index, { peers: i % 8 === 0 ? peers : [] })
        completed++
      } catch (err) {
        if (!/reset|closed/i.test(String(err))) throw err
        resets++
      }
    }
  }
  const t0 = Date.now()
  try {
    await Promise.all([worker(), worker(), worker()])
  } finally {
    done = true
    await statusPoller
  }
  const peak = rss.stop()
  const elapsed = Date.now() - t0
  assert.ok(completed >= ROUNDS / 4, `only ${completed} of ${ROUNDS} floods got through (${resets} reset)`)
  assert.ok(peak < RSS_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB`)
  assert.ok(maxStatusMs < STATUS_BOUND_MS, `status took up to ${maxStatusMs} ms during the flood`)
  const status = await n0.api<{ peersKnown: number }>('/v1/status')
  assert.ok(status.peersKnown < 100, `${status.peersKnown} members known`)
  await survived(before, { from })
  t.diagnostic(`reconciliation flood: ${completed} × ${FLOOD_ENTRIES} entries (${resets} streams reset) in ${elapsed} ms, peak RSS ${peak.toFixed(0)} MiB (from ${baseline.toFixed(0)})`)
})

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
