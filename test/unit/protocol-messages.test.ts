import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  CHUNK_BYTES, MAX_ADDRS_PER_PEER, MAX_FRAME_BYTES, MAX_INLINE_BYTES, MAX_PEERS_PER_MESSAGE,
  MAX_WANT_ENTRIES, MessageType, RangeMode, decodeMessage, encodeMessage, expectType, type Message
} from '../../src/protocol/messages.js'
import { Writer } from '../../src/format/binary.js'
import { DmError } from '../../src/errors.js'
import { decodeEnvelope, encodeEnvelope, networkIdFrom, newVersion, versionId } from '../../src/format/version.js'
import { dmError, testKey } from './helpers.js'

const key = testKey(41)
const NET = networkIdFrom('wire-net')
const v = newVersion({ name: 'dns/cnames', networkId: NET, privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('hello'), timestampMs: 1_764_000_000_000, expiresAtMs: 1_764_000_100_000 })
const tomb = newVersion({ name: 'gone', networkId: NET, privateKey: key.privateKey, signer: key.publicKey, timestampMs: 7 })
const id32 = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const PEER = '12D3KooWLPNruZ6cv4uxGsLL6dV9CXpuMK5yixXh7uVLyaHRbVAn'

/** One or more samples of every message type. */
const SAMPLES: Message[] = [
  { type: MessageType.Summary, count: 0, digest: id32(0), peers: [] },
  {
    type: MessageType.Summary,
    count: 4_000_000_000,
    digest: id32(9),
    peers: [
      { id: PEER, addrs: ['/ip4/10.0.0.1/tcp/7946', '/ip6/::1/tcp/7946'] },
      { id: 'x', addrs: [] }
    ]
  },
  { type: MessageType.Want, entries: [] },
  { type: MessageType.Want, entries: [{ name: 'dns/cnames', id: versionId(v) }, { name: 'a', id: id32(1) }] },
  { type: MessageType.Version, version: v },
  { type: MessageType.Version, version: { ...tomb, attachments: Uint8Array.of(1, 2, 3) } },
  { type: MessageType.Chunk, data: new Uint8Array(0) },
  { type: MessageType.Chunk, data: new Uint8Array(CHUNK_BYTES).fill(0xab) },
  { type: MessageType.NotFound, name: 'dns/cnames' },
  { type: MessageType.Push, version: v, content: Buffer.from('hello') },
  { type: MessageType.Push, version: v, content: undefined },
  { type: MessageType.Push, version: tomb, content: new Uint8Array(0) },
  { type: MessageType.Push, version: v, content: new Uint8Array(MAX_INLINE_BYTES).fill(1) },
  { type: MessageType.Versions, answers: [{ version: v, content: Buffer.from('hello') }, { version: tomb, content: new Uint8Array(0) }] },
  { type: MessageType.Reconcile, salt: new Uint8Array(16).fill(3), ranges: [{ upper: null, mode: RangeMode.Digest, digest: id32(4) }] },
  {
    type: MessageType.Reconcile,
    salt: undefined,
    ranges: [
      { upper: Buffer.from('a'), mode: RangeMode.Skip },
      { upper: Buffer.from('dns/'), mode: RangeMode.Items, entries: [{ name: 'b', timestampMs: 5, id: id32(5) }] },
      { upper: null, mode: RangeMode.Hashes, hashes: new Uint8Array(6).fill(7), newestMs: 9 }
    ]
  }
]

/** Normalises Buffers and subarrays to plain Uint8Arrays so deepEqual compares values. */
function plain (x: unknown): unknown {
  if (x instanceof Uint8Array) return Array.from(x)
  if (Array.isArray(x)) return x.map(plain)
  if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, val]) => [k, plain(val)]))
  return x
}

test('every message type in use has a round-trip sample', () => {
  const covered = new Set(SAMPLES.map(m => m.type))
  for (const t of Object.values(MessageType).filter((x): x is MessageType => typeof x === 'number' && x !== MessageType.Index)) {
    assert.ok(covered.has(t), `no sample for ${MessageType[t]}`)
  }
  assert.equal(covered.size, 8)
})

for (const [i, m] of SAMPLES.entries()) {
  test(`round trip #${i}: ${MessageType[m.type]}`, () => {
    const frame = encodeMessage(m)
    assert.equal(frame[0], m.type, 'the first byte is the type')
    const back = decodeMessage(frame)
    assert.deepEqual(plain(back), plain(m))
    assert.ok(encodeMessage(back).equals(frame), 're-encoding differs')
  })
}

test('byte layout of small messages', () => {
  assert.equal(encodeMessage({ type: MessageType.NotFound, name: 'ab' }).toString('hex'), '0600026162')
  assert.equal(encodeMessage({ type: MessageType.Chunk, data: Uint8Array.of(1, 2) }).toString('hex'), '050102')
  assert.equal(encodeMessage({ type: MessageType.Want, entries: [{ name: 'a', id: id32(7) }] }).toString('hex'), '030001000161' + '07'.repeat(32))
  assert.equal(
    encodeMessage({ type: MessageType.Summary, count: 3, digest: id32(1), peers: [{ id: 'p', addrs: ['/a'] }] }).toString('hex'),
    '0100000003' + '01'.repeat(32) + '01' + '000170' + '01' + '00022f61')
  const env = encodeEnvelope(v).toString('hex')
  assert.equal(encodeMessage({ type: MessageType.Version, version: v }).toString('hex'), '04' + env)
  assert.equal(encodeMessage({ type: MessageType.Push, version: v, content: undefined }).toString('hex'), '07' + env + '00')
  assert.equal(encodeMessage({ type: MessageType.Push, version: v, content: Uint8Array.of(9) }).toString('hex'), '07' + env + '01' + '00000001' + '09')
  // The vector of docs/PROTOCOL.md 7.1: Versions carrying "dns/cnames" ("hello") and the tombstone of "gone".
  assert.equal(encodeMessage({ type: MessageType.Versions, answers: [{ version: v, content: Buffer.from('hello') }, { version: tomb, content: new Uint8Array(0) }] }).toString('hex'),
    '09' + '0002' + env + '00000005' + '68656c6c6f' + encodeEnvelope(tomb).toString('hex') + '00000000')
})

test('truncated frames are ERR_DECODE (every prefix of every sample)', () => {
  for (const m of SAMPLES) {
    if (m.type === MessageType.Chunk) continue // a prefix of a chunk is a shorter chunk
    const frame = encodeMessage(m)
    // Every prefix is checked for small frames; for large ones, a spread of cut points.
    const step = frame.length > 2000 ? 97 : 1
    for (let n = 0; n < frame.length; n += step) {
      assert.throws(() => decodeMessage(frame.subarray(0, n)), dmError('ERR_DECODE'), `${MessageType[m.type]} cut to ${n}/${frame.length}`)
    }
  }
  assert.throws(() => decodeMessage(new Uint8Array(0)), dmError('ERR_DECODE', /truncated/))
})

test('trailing bytes are ERR_DECODE', () => {
  for (const m of SAMPLES) {
    if (m.type === MessageType.Chunk) continue // a chunk is the rest of the frame
    const frame = Buffer.concat([encodeMessage(m), Buffer.of(0)])
    assert.throws(() => decodeMessage(frame), dmError('ERR_DECODE', /trailing/), MessageType[m.type])
  }
})

test('unknown message types are ERR_DECODE', () => {
  // 2 is the retired format-1 Index: refused like any unknown type.
  for (const t of [0, 2, 10, 0x7f, 0x80, 0xff]) {
    assert.throws(() => decodeMessage(Uint8Array.of(t, 0, 0, 0, 0)), dmError('ERR_DECODE', /unknown message type/), String(t))
  }
})

test('oversized counts and lengths are ERR_DECODE before any allocation', () => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['want count', new Writer().u8(MessageType.Want).u16(MAX_WANT_ENTRIES + 1).finish(), /lists 1025 items/],
    ['summary peers', new Writer().u8(MessageType.Summary).u32(0).bytes(id32(0)).u8(MAX_PEERS_PER_MESSAGE + 1).finish(), /33 peers/],
    ['peer addrs', new Writer().u8(MessageType.Summary).u32(0).bytes(id32(0)).u8(1).string16('p').u8(MAX_ADDRS_PER_PEER + 1).finish(), /9 addresses/],
    ['peer id length', new Writer().u8(MessageType.Summary).u32(0).bytes(id32(0)).u8(1).u16(129).bytes(new Uint8Array(129)).u8(0).finish(), /129 bytes/],
    ['addr length', new Writer().u8(MessageType.Summary).u32(0).bytes(id32(0)).u8(1).string16('p').u8(1).u16(257).bytes(new Uint8Array(257)).finish(), /257 bytes/],
    ['not-found name length', new Writer().u8(MessageType.NotFound).u16(0xffff).finish(), /65535 bytes/],
    ['chunk', new Writer().u8(MessageType.Chunk).bytes(new Uint8Array(CHUNK_BYTES + 1)).finish(), /chunk of 262145 bytes/],
    ['inline content', new Writer().u8(MessageType.Push).bytes(encodeEnvelope(v)).u8(1).u32(MAX_INLINE_BYTES + 1).finish(), /at most 65536/],
    ['inline content 2^32-1', new Writer().u8(MessageType.Push).bytes(encodeEnvelope(v)).u8(1).u32(0xffffffff).finish(), /at most 65536/],
    ['push flag', new Writer().u8(MessageType.Push).bytes(encodeEnvelope(v)).u8(2).finish(), /content flag/],
    ['versions count', new Writer().u8(MessageType.Versions).u16(MAX_WANT_ENTRIES + 1).finish(), /lists 1025 items/],
    ['versions empty', new Writer().u8(MessageType.Versions).u16(0).finish(), /empty/],
    ['versions content', new Writer().u8(MessageType.Versions).u16(1).bytes(encodeEnvelope(v)).u32(MAX_INLINE_BYTES + 1).finish(), /at most 65536/],
    ['versions content size', new Writer().u8(MessageType.Versions).u16(1).bytes(encodeEnvelope(v)).u32(4).bytes(Buffer.from('hell')).finish(), /is 4 bytes, signed 5/],
    ['frame', new Uint8Array(MAX_FRAME_BYTES + 1).fill(MessageType.Chunk), /exceeds 1048576/]
  ]
  for (const [what, frame, re] of cases) assert.throws(() => decodeMessage(frame), dmError('ERR_DECODE', re), what)
  // The limits themselves are accepted.
  assert.equal((decodeMessage(new Writer().u8(MessageType.Summary).u32(0).bytes(id32(0)).u8(MAX_PEERS_PER_MESSAGE)
    .bytes(Buffer.concat(Array.from({ length: MAX_PEERS_PER_MESSAGE }, () => new Writer().string16('p').u8(0).finish()))).finish()) as { peers: unknown[] }).peers.length, MAX_PEERS_PER_MESSAGE)
})

test('strings must be exact UTF-8; envelope names must be valid', () => {
  const badUtf8 = new Writer().u8(MessageType.NotFound).u16(2).bytes(Uint8Array.of(0xc3, 0x28)).finish()
  assert.throws(() => decodeMessage(badUtf8), dmError('ERR_DECODE', /UTF-8/))
  const env = encodeEnvelope(v)
  env.write('../', 57, 'latin1') // "dns/cnames" becomes "../cnames"
  // A syntactically broken name inside an envelope is reported as ERR_NAME_INVALID (still a DmError).
  assert.throws(() => decodeMessage(Buffer.concat([Buffer.of(MessageType.Version), env])), dmError('ERR_NAME_INVALID'))
})

test('decoded messages do not alias the frame', () => {
  const frame = encodeMessage({ type: MessageType.Want, entries: [{ name: 'a', id: id32(5) }] })
  const m = decodeMessage(frame)
  frame.fill(0)
  assert.ok(m.type === MessageType.Want && m.entries[0].id.every(b => b === 5))
})

test('expectType returns the message or throws ERR_DECODE', () => {
  const m = decodeMessage(encodeMessage({ type: MessageType.NotFound, name: 'a' }))
  assert.equal(expectType(m, MessageType.NotFound).name, 'a')
  assert.throws(() => expectType(m, MessageType.Chunk), dmError('ERR_DECODE', /expected message type Chunk, got NotFound/))
})

/** Asserts that fn either returns or throws a DmError, nothing else. */
function onlyDmError (fn: () => unknown): void {
  try {
    fn()
  } catch (err) {
    if (!(err instanceof DmError)) throw new Error(`threw a non-DmError: ${String(err)}`, { cause: err })
  }
}

test('property: decodeMessage on random bytes never throws anything but DmError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), bytes => onlyDmError(() => decodeMessage(bytes))), { numRuns: 3000 })
  // With a valid type byte, to get past the first switch.
  fc.assert(fc.property(fc.integer({ min: 1, max: 9 }), fc.uint8Array({ maxLength: 600 }), (type, rest) => {
    onlyDmError(() => decodeMessage(Buffer.concat([Buffer.of(type), rest])))
  }), { numRuns: 3000 })
})

test('property: mutated valid frames decode or throw DmError, never anything else', () => {
  const frames = SAMPLES.filter(m => m.type !== MessageType.Chunk).map(m => encodeMessage(m)).filter(f => f.length < 5000)
  fc.assert(fc.property(
    fc.constantFrom(...frames),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
    fc.nat(),
    (frame, edits, cut) => {
      const f = Buffer.from(frame)
      for (const [at, val] of edits) f[at % f.length] = val
      onlyDmError(() => decodeMessage(f))
      onlyDmError(() => decodeMessage(f.subarray(0, cut % (f.length + 1))))
    }), { numRuns: 3000 })
})

test('property: decodeEnvelope on random and mutated bytes never throws anything but DmError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), bytes => onlyDmError(() => decodeEnvelope(bytes))), { numRuns: 3000 })
  const good = encodeEnvelope(v)
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    fc.nat(),
    (edits, cut) => {
      const f = Buffer.from(good)
      for (const [at, val] of edits) f[at % f.length] = val
      onlyDmError(() => decodeEnvelope(f))
      onlyDmError(() => decodeEnvelope(f.subarray(0, cut % (f.length + 1))))
    }), { numRuns: 3000 })
})
