import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateKeyPairSync, createPublicKey } from 'node:crypto'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion } from '../../src/format/version.ts'
import { LAN_PROFILE } from '../../src/config/tuning.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { LOCAL_SOURCE } from '../../src/sync/acceptor-api.ts'
import { createSync, type Sync } from '../../src/sync/index.ts'
import type { Clock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * Anti-entropy on a virtual clock: rounds that find nothing stretch the
 * interval up to pushPullMaxIntervalMs, and a version accepted brings the
 * short interval back at once.
 */

const BASE_MS = 1000
const MAX_MS = 8000
const networkId = networkIdFrom('unit')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))
const noPeers = { sample: () => [], learn: () => {}, onJoin: () => {}, wantsIntroductions: () => false }

/** Timers on virtual time: they run when the test moves the time past them. */
class VirtualClock implements Clock {
  now = Date.now()
  fired = 0
  private timers: Array<{ at: number, fn: () => void }> = []
  nowMs (): number { return this.now }
  after (ms: number, fn: () => void): () => void {
    const t = { at: this.now + ms, fn }
    this.timers.push(t)
    return () => { this.timers = this.timers.filter(x => x !== t) }
  }

  /** Moves the time on by `ms`, running each timer that falls due. */
  advance (ms: number): void {
    const end = this.now + ms
    for (;;) {
      const due = this.timers.filter(t => t.at <= end).sort((a, b) => a.at - b.at)[0]
      if (due === undefined) break
      this.timers = this.timers.filter(t => t !== due)
      this.now = due.at
      this.fired++
      due.fn()
    }
    this.now = end
  }
}

const cleanup: Array<() => Promise<void>> = []
after(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

test('rounds that find nothing stretch the push-pull interval; a version accepted brings it back', async () => {
  const clock = new VirtualClock()
  const net = new MemoryNetwork()
  const nodes: Array<{ store: Store, sync: Sync }> = []
  let roundEvents = 0
  for (const id of ['n0', 'n1']) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-ae-backoff-'))
    const store = await openStore(dir)
    const sync = createSync({ store, transport: net.transport(id), peers: noPeers, clock, random: Math.random, log: silentLog }, {
      policy: { networkId, allowlist: new Map([['f', [signer]]]), maxClockSkewMs: 60_000 },
      // The expiry sweep's timer never falls due here: every timer that fires is a push-pull round's.
      tuning: { ...LAN_PROFILE, pushPullIntervalMs: BASE_MS, pushPullMaxIntervalMs: MAX_MS, expirySweepMs: 3_600_000 }
    })
    sync.antiEntropy.events.on('round', () => { roundEvents++ })
    await sync.start()
    cleanup.push(async () => { await sync.stop(); await store.flush(); await store.close(); fs.rmSync(dir, { recursive: true, force: true }) })
    nodes.push({ store, sync })
  }
  net.connect('n0', 'n1')

  /** Rounds started over `ms` of virtual time, each run to its end (on both sides) before time moves on. */
  const roundsIn = async (ms: number): Promise<number> => {
    const fired0 = clock.fired
    for (let t = 0; t < ms; t += 100) {
      clock.advance(100)
      const started = clock.fired
      await waitFor('the rounds started to end', () => roundEvents >= 2 * started, 5000, 1)
    }
    return clock.fired - fired0
  }

  await roundsIn(4 * MAX_MS) // long enough for both nodes to reach the longest interval
  const settled = await roundsIn(4 * MAX_MS)
  // Two nodes at 8 s ± 25 % start 6-10 rounds in 32 s; at the short interval they would start about 64.
  assert.ok(settled >= 6 && settled <= 10, `rounds in 32 s once in sync: ${settled}`)

  const content = Buffer.from('news')
  const v = newVersion({ name: 'f', content, networkId, privateKey, signer, timestampMs: clock.now })
  assert.equal((await nodes[0].sync.acceptor.ingest(v, content, LOCAL_SOURCE)).ok, true)
  await waitFor('n1 holds f', () => nodes[1].store.get('f') !== undefined, 5000, 1)
  // Both accepted a version: each starts a round within the short interval (1 s ± 25 %).
  assert.ok(await roundsIn(1300) >= 2, 'both nodes back at the short interval')
})
