import '../../src/polyfill.ts'
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LOCAL_PROFILE } from '../../src/config/tuning.ts'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom, newVersion, sameVersion, type SignedVersion } from '../../src/format/version.ts'
import { PROTOCOL_PUSH } from '../../src/protocol/messages.ts'
import { openStore } from '../../src/store/store.ts'
import { createAcceptor } from '../../src/sync/acceptor.ts'
import type { Acceptor } from '../../src/sync/acceptor-api.ts'
import type { FetchService } from '../../src/sync/fetch.ts'
import { createPushService } from '../../src/sync/push.ts'
import { systemClock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { pushBody } from '../helpers/hostile-peer.ts'
import { MemoryNetwork } from '../helpers/memory-transport.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * Copies of one version arrive from most neighbours of a node in every
 * publish. The push service drops a copy of what is held, or of what it is
 * storing, before the acceptor hashes or verifies it; anything that differs
 * from it in a signed byte still goes to the acceptor.
 */

const networkId = networkIdFrom('test-net')
const { privateKey } = generateKeyPairSync('ed25519')
const signer = rawPublicKey(createPublicKey(privateKey))

test('sameVersion: equal in every signed field, signer and signature; attachments do not count', () => {
  const content = Buffer.from('hello')
  const v = newVersion({ name: 'a.txt', content, networkId, privateKey, signer, timestampMs: 1000 })
  assert.ok(sameVersion(v, { ...v, signature: Uint8Array.from(v.signature), attachments: Uint8Array.of(1) }))
  const flip = (b: Uint8Array): Uint8Array => { const c = Uint8Array.from(b); c[0] ^= 1; return c }
  const variants: Array<[string, SignedVersion]> = [
    ['name', { ...v, name: 'b.txt' }], ['timestamp', { ...v, timestampMs: 1001 }], ['expiry', { ...v, expiresAtMs: 5000 }],
    ['size', { ...v, size: 6 }], ['kind', { ...v, kind: v.kind + 1 }], ['sha256', { ...v, sha256: flip(v.sha256) }],
    ['network', { ...v, networkId: flip(v.networkId) }], ['signer', { ...v, signer: flip(v.signer) }], ['signature', { ...v, signature: flip(v.signature) }]
  ]
  for (const [what, other] of variants) assert.equal(sameVersion(v, other), false, `a different ${what}`)
})

test('copies of a version being stored or held are refused before the acceptor; a tampered copy still reaches it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-push-copies-'))
  const store = await openStore(dir)
  try {
    const real = createAcceptor({ store, clock: systemClock, log: silentLog }, {
      policy: { networkId, allowlist: new Map([['hello.txt', [signer]]]), maxClockSkewMs: 60_000 },
      tuning: LOCAL_PROFILE
    })
    const refused: Array<{ code: string, source: string }> = []
    real.events.on('refused', ({ code, source }) => refused.push({ code, source }))
    // The first ingest waits at the gate, as a slow disk would hold it: copies arrive meanwhile.
    let open = (): void => {}
    const gate = new Promise<void>(resolve => { open = resolve })
    const ingested: string[] = []
    const acceptor: Acceptor = {
      ...real,
      async ingest (v, content, source) {
        ingested.push(source)
        await gate
        return await real.ingest(v, content, source)
      }
    }
    const net = new MemoryNetwork()
    const fetch = { note: () => true, fetch: async () => {} } as unknown as FetchService
    const push = createPushService({ transport: net.transport('r'), acceptor, fetch, random: Math.random, clock: systemClock, log: silentLog }, LOCAL_PROFILE)
    await push.start()
    const send = async (from: string, body: Uint8Array): Promise<void> => {
      const t = net.transport(from)
      net.connect(from, 'r')
      await (await t.open('r', PROTOCOL_PUSH)).send(body)
    }

    const content = Buffer.from('the news')
    const v = newVersion({ name: 'hello.txt', content, networkId, privateKey, signer, timestampMs: Date.now() })
    for (const peer of ['p1', 'p2', 'p3', 'p4', 'p5']) await send(peer, pushBody(v, content))
    await waitFor('all five pushes judged', () => ingested.length + refused.length >= 5, 5000)
    assert.deepEqual(ingested, ['p1'], 'one ingest for five copies')
    assert.deepEqual(refused, ['p2', 'p3', 'p4', 'p5'].map(source => ({ code: 'ERR_ALREADY_HELD', source })))

    open()
    await waitFor('the version stored', () => store.get('hello.txt') !== undefined, 5000)
    await send('p6', pushBody(v, content))
    await waitFor('the late copy judged', () => refused.length === 5, 5000)
    assert.deepEqual(refused[4], { code: 'ERR_ALREADY_HELD', source: 'p6' })
    assert.deepEqual(ingested, ['p1'], 'a copy of the held version never reaches the acceptor')

    // The held version's signature on other bytes is not a copy: the acceptor judges it, and refuses it
    // (as stale or as a bad signature, as the tie-break between the two ids falls).
    const other = Buffer.from('not the news')
    await send('p7', pushBody({ ...v, size: other.length }, other))
    await waitFor('the tampered copy judged', () => refused.length === 6, 5000)
    assert.deepEqual(ingested, ['p1', 'p7'])
    assert.ok(['ERR_STALE', 'ERR_BAD_SIGNATURE'].includes(refused[5].code), refused[5].code)
    await push.stop()
    await real.stop()
  } finally {
    await store.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
