import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LOCAL_PROFILE } from '../../src/config/tuning.ts'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion } from '../../src/format/version.ts'
import { PROTOCOL_PUSH } from '../../src/protocol/messages.ts'
import { openStore } from '../../src/store/store.ts'
import { createAcceptor } from '../../src/sync/acceptor.ts'
import type { FetchService } from '../../src/sync/fetch.ts'
import { createPushService } from '../../src/sync/push.ts'
import { systemClock, type Clock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { pushBody } from '../helpers/hostile-peer.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * A version received from a peer goes to pushEagerFanout peers at once and to
 * the rest pushLaterMs later, except those that sent a copy meanwhile.
 */

const networkId = networkIdFrom('test-net')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))

/** Timers that run only when the test says: the second wave waits for it. */
class ManualClock implements Clock {
  private timers: Array<() => void> = []
  /** The waits asked for, in order. */
  readonly waits: number[] = []
  now = Date.now()
  nowMs (): number { return this.now }
  after (ms: number, fn: () => void): () => void {
    this.waits.push(ms)
    this.timers.push(fn)
    return () => { this.timers = this.timers.filter(f => f !== fn) }
  }

  runAll (): void { while (this.timers.length > 0) for (const fn of this.timers.splice(0)) fn() }
}

/** The push service on node r, a real acceptor and store, and `peers` connected to r that count the pushes they get. */
async function pushRig (peers: string[], o: { pushEagerFanout: number, pushLaterMs: number, random: () => number }): Promise<{
  got: Map<string, number>, refused: string[], clock: ManualClock
  sendFrom: (p: string, body: Uint8Array) => Promise<void>
  close: () => Promise<void>
}> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-push-waves-'))
  const store = await openStore(dir)
  const acceptor = createAcceptor({ store, clock: systemClock, log: silentLog }, {
    policy: { networkId, allowlist: new Map([['hello.txt', [signer]]]), maxClockSkewMs: 60_000 },
    tuning: LOCAL_PROFILE
  })
  const refused: string[] = []
  acceptor.events.on('refused', ({ source }) => refused.push(source))
  const net = new MemoryNetwork()
  const clock = new ManualClock()
  const fetch = { note: () => true, fetch: async () => {} } as unknown as FetchService
  const push = createPushService({ transport: net.transport('r'), acceptor, fetch, random: o.random, clock, log: silentLog },
    { ...LOCAL_PROFILE, pushFanout: 8, pushEagerFanout: o.pushEagerFanout, pushLaterMs: o.pushLaterMs })
  await push.start()
  const got = new Map(peers.map(p => [p, 0]))
  for (const p of peers) {
    await net.transport(p).handle(PROTOCOL_PUSH, async ch => {
      for (let f = await ch.read(); f !== undefined; f = await ch.read()) got.set(p, (got.get(p) ?? 0) + 1)
    })
    net.connect(p, 'r')
  }
  return {
    got,
    refused,
    clock,
    sendFrom: async (p, body) => { await (await net.transport(p).open('r', PROTOCOL_PUSH)).send(body) },
    async close () {
      await push.stop()
      await acceptor.stop()
      await store.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

test('the second wave skips the peers that sent a copy meanwhile', async () => {
  const peers = ['src', 'b', 'c', 'd', 'e', 'f']
  const { got, refused, clock, sendFrom, close } = await pushRig(peers, { pushEagerFanout: 2, pushLaterMs: 50, random: Math.random })
  try {
    const content = Buffer.from('the news')
    const body = pushBody(newVersion({ name: 'hello.txt', content, networkId, privateKey, signer, timestampMs: Date.now() }), content)
    await sendFrom('src', body)
    await waitFor('the first wave', () => [...got.values()].reduce((a, b) => a + b) === 2, 5000, 1)
    const waiting = peers.filter(p => p !== 'src' && got.get(p) === 0)
    assert.equal(waiting.length, 3, 'three peers left for the second wave')

    // One of them pushes a copy before the second wave: it holds the version, and is skipped.
    const [holder, ...rest] = waiting
    await sendFrom(holder, body)
    await waitFor('the copy judged', () => refused.includes(holder), 5000, 1)
    clock.runAll()
    await waitFor('the second wave', () => rest.every(p => got.get(p) === 1), 5000, 1)
    assert.equal(got.get(holder), 0, 'no copy back to a peer that sent one')
    assert.equal(got.get('src'), 0, 'none back to the source')
    assert.equal([...got.values()].reduce((a, b) => a + b), 4, 'four pushes for five peers')
  } finally {
    await close()
  }
})

test('the second wave waits about two hops, as timed from the copies that arrive', async () => {
  const { refused, clock, sendFrom, close } = await pushRig(['src', 'b', 'c'], { pushEagerFanout: 1, pushLaterMs: 20, random: () => 0.5 })
  try {
    const version = (t: number): Uint8Array => {
      const content = Buffer.from(`news ${t}`)
      return pushBody(newVersion({ name: 'hello.txt', content, networkId, privateKey, signer, timestampMs: t }), content)
    }

    const t0 = Date.now()
    await sendFrom('src', version(t0))
    await waitFor('the first wait', () => clock.waits.length === 1, 5000, 1)
    assert.equal(clock.waits[0], 40, 'no hop timed yet: twice pushLaterMs')
    // The second copy comes 500 ms after the first: hops take that long here.
    clock.now += 500
    await sendFrom('b', version(t0))
    await waitFor('the copy judged', () => refused.includes('b'), 5000, 1)
    clock.runAll()

    const waitsBefore = clock.waits.length
    await sendFrom('src', version(t0 + 1))
    await waitFor('the next wait', () => clock.waits.length > waitsBefore, 5000, 1)
    // 0.8 × 20 + 0.2 × 500 = 116 ms per hop, twice that to wait (the jitter is 1 with random() = 0.5).
    assert.equal(clock.waits[waitsBefore], 232)
    clock.runAll()
  } finally {
    await close()
  }
})
