import { test, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { networkIdFrom, newVersion, signVersion, VersionKind, type SignedVersion } from '../../src/format/version.ts'
import { openStore, type Store } from '../../src/store/store.ts'
import { createAcceptor } from '../../src/sync/acceptor.ts'
import { LOCAL_SOURCE, STAGE_ABOVE_BYTES, type Acceptor } from '../../src/sync/acceptor-api.ts'
import { systemClock } from '../../src/util/clock.ts'
import { silentLog } from '../../src/util/log.ts'
import { tempDir, testKey } from './helpers.ts'

/*
 * Content staged on disk as it arrives (store.stage / commitStaged) and the
 * acceptor's streamed and staged ingest: what reaches files/ is always the
 * signed content, whatever a stream does, and staging/ is left empty.
 */

const MiB = 1024 * 1024
const key = testKey(7)
const networkId = networkIdFrom('staged')
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c() })

async function setup (): Promise<{ dir: string, store: Store, acceptor: Acceptor }> {
  const { dir, cleanup } = tempDir('dm-staged-')
  const store = await openStore(dir)
  const acceptor = createAcceptor({ store, clock: systemClock, log: silentLog }, {
    policy: { networkId, allowlist: new Map([['big.bin', [key.publicKey]]]), maxClockSkewMs: 60_000 },
    tuning: { expirySweepMs: 3_600_000 }
  })
  cleanups.push(cleanup, async () => await store.close())
  return { dir, store, acceptor }
}

let ts = Date.now()
function sign (content: Uint8Array): SignedVersion {
  return newVersion({ name: 'big.bin', networkId, privateKey: key.privateKey, signer: key.publicKey, content, timestampMs: ++ts })
}

/** A version that claims `size` bytes with the hash of `claimed`. */
function lyingVersion (claimed: Uint8Array, size: number): SignedVersion {
  return signVersion({ kind: VersionKind.File, networkId, name: 'big.bin', timestampMs: ++ts, expiresAtMs: 0, size, sha256: createHash('sha256').update(claimed).digest() }, key.privateKey, key.publicKey)
}

async function * chunks (data: Uint8Array, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield data.subarray(off, off + size)
}

const staging = (dir: string): string[] => fs.readdirSync(path.join(dir, 'staging'))
const held = (dir: string): Buffer | undefined => { try { return fs.readFileSync(path.join(dir, 'files', 'big.bin')) } catch { return undefined } }

test('staged content is committed by rename: files/ gets the bytes, staging/ is left empty; a staged file not committed is removed', async () => {
  const { dir, store } = await setup()
  const content = randomBytes(3 * MiB + 17)
  const staged = await store.stage()
  for await (const c of chunks(content)) await staged.write(c)
  assert.equal(staged.size, content.length)
  assert.deepEqual(staged.sha256(), createHash('sha256').update(content).digest())
  assert.equal((await store.commitStaged(sign(content), staged)).committed, true)
  assert.deepEqual(held(dir), content)
  assert.deepEqual(staging(dir), [])

  // An older version loses the compare-and-set: nothing written, its staged file removed.
  const old = newVersion({ name: 'big.bin', networkId, privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('old'), timestampMs: 1 })
  const loser = await store.stage()
  await loser.write(Buffer.from('old'))
  assert.equal((await store.commitStaged(old, loser)).committed, false)
  assert.deepEqual(held(dir), content)
  assert.deepEqual(staging(dir), [])

  const dropped = await store.stage()
  await dropped.write(Buffer.from('x'))
  assert.equal(staging(dir).length, 1)
  await dropped.discard()
  assert.deepEqual(staging(dir), [])
})

test('a streamed ingest writes to staging/ while the bytes arrive, not after', async () => {
  const { dir, acceptor } = await setup()
  const content = randomBytes(4 * MiB)
  const v = sign(content)
  let release!: () => void
  const paused = new Promise<void>(resolve => { release = resolve })
  let midway!: () => void
  const reachedMidway = new Promise<void>(resolve => { midway = resolve })
  async function * stream (): AsyncGenerator<Uint8Array> {
    yield content.subarray(0, 2 * MiB)
    yield content.subarray(2 * MiB, 3 * MiB)
    midway()
    await paused
    yield content.subarray(3 * MiB)
  }
  const result = acceptor.ingest(v, stream(), LOCAL_SOURCE)
  await reachedMidway
  // At least the first 2 MiB are on disk in a staged file before the stream has ended.
  const deadline = Date.now() + 10_000
  let onDisk = 0
  while (onDisk < 2 * MiB && Date.now() < deadline) {
    onDisk = staging(dir).reduce((n, f) => n + fs.statSync(path.join(dir, 'staging', f)).size, 0)
    await new Promise(resolve => setImmediate(resolve))
  }
  assert.ok(onDisk >= 2 * MiB, `only ${onDisk} bytes staged while the stream was paused`)
  assert.equal(held(dir), undefined, 'nothing is in files/ before the content is complete and checked')
  release()
  assert.deepEqual(await result, { ok: true })
  assert.deepEqual(held(dir), content)
  assert.deepEqual(staging(dir), [])
})

test('streamed content longer, shorter or other than signed is refused; nothing reaches files/, staging/ is left empty', async () => {
  const { dir, acceptor } = await setup()
  const real = randomBytes(STAGE_ABOVE_BYTES * 3)
  const cases: Array<[string, SignedVersion, Uint8Array]> = [
    ['longer', lyingVersion(real.subarray(0, real.length - 1), real.length - 1), real],
    ['shorter', sign(real), real.subarray(0, real.length - 1)],
    ['other bytes', sign(real), Buffer.concat([real.subarray(1), Buffer.from('!')])],
    ['small and other', lyingVersion(Buffer.from('abc'), 3), Buffer.from('abd')]
  ]
  for (const [what, v, sent] of cases) {
    const r = await acceptor.ingest(v, chunks(sent), LOCAL_SOURCE)
    assert.equal(r.ok ? 'ok' : r.code, 'ERR_CONTENT_MISMATCH', what)
    assert.equal(held(dir), undefined, what)
    assert.deepEqual(staging(dir), [], what)
  }
})

test('a refused header leaves the stream unread; a stream that fails midway is refused with its code and leaves nothing', async () => {
  const { dir, acceptor } = await setup()
  const content = randomBytes(MiB)
  let pulled = 0
  async function * counted (): AsyncGenerator<Uint8Array> { pulled++; yield content }
  const forged = { ...sign(content), signature: new Uint8Array(64) }
  const r1 = await acceptor.ingest(forged, counted(), LOCAL_SOURCE)
  assert.equal(r1.ok ? 'ok' : r1.code, 'ERR_BAD_SIGNATURE')
  assert.equal(pulled, 0, 'the content of a refused version is not read')

  async function * broken (): AsyncGenerator<Uint8Array> {
    yield content.subarray(0, content.length / 2)
    throw Object.assign(new Error('client went away'), { code: 'ECONNRESET' })
  }
  const r2 = await acceptor.ingest(sign(content), broken(), LOCAL_SOURCE)
  assert.equal(r2.ok ? 'ok' : r2.code, 'ERR_DECODE')
  assert.equal(held(dir), undefined)
  assert.deepEqual(staging(dir), [])
})

test('ingestStaged checks the staged size and hash and refuses a lie, removing the staged file', async () => {
  const { dir, store, acceptor } = await setup()
  const content = randomBytes(2 * MiB)
  const lie = await store.stage()
  await lie.write(randomBytes(2 * MiB))
  const r = await acceptor.ingestStaged(sign(content), lie, 'peer')
  assert.equal(r.ok ? 'ok' : r.code, 'ERR_CONTENT_MISMATCH')
  assert.deepEqual(staging(dir), [])
  const good = await store.stage()
  await good.write(content)
  assert.deepEqual(await acceptor.ingestStaged(sign(content), good, 'peer'), { ok: true })
  assert.deepEqual(held(dir), content)
  assert.deepEqual(staging(dir), [])
})
