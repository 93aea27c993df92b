import assert from 'node:assert/strict'
import { createHash, createPrivateKey, createPublicKey, sign as nodeSign } from 'node:crypto'
import fc from 'fast-check'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { DmError } from '../../src/errors.ts'
import { ConfigError, parseConfig } from '../../src/config/load.ts'
import { tuningProblems } from '../../src/config/tuning.ts'
import { LOG_LEVELS } from '../../src/config/config.ts'
import { rawPublicKey, publicKeyToBase64, type SigningKey } from '../../src/crypto/keys.ts'
import { nameProblem } from '../../src/format/names.ts'
import {
  MAX_CONTENT_BYTES, VersionKind, decodeEnvelope, encodeEnvelope, networkIdFrom, newVersion, signedBytes,
  type SignedVersion
} from '../../src/format/version.ts'
import { checkContent, checkHeader, type PolicyContext } from '../../src/policy/accept.ts'
import { MessageType, decodeMessage, encodeMessage, type Message } from '../../src/protocol/messages.ts'
import { decodePublishHead, encodePublishHead } from '../../src/api/wire.ts'

/*
 * Property fuzzing of every decoder that reads untrusted bytes or text:
 *   decodeMessage (peers), decodeEnvelope (peers, disk), decodePublishHead
 *   (local API), parseConfig (operators' files).
 * For each: whatever the input, the only exception is a DmError (ConfigError
 * is one), and whatever decodes is canonical (re-encodes to the same bytes).
 * For versions: whatever decodes is refused by the acceptance policy unless
 * its signature is genuinely valid, checked with an independent Ed25519
 * implementation (@noble/ed25519), and content is accepted only when it
 * hashes to the signed value.
 *
 * Inputs are random bytes, random structured values, and valid samples with
 * random mutations (bit flips, byte sets, truncation, insertion, deletion,
 * length fields forced to their maximum), so the fuzzer gets past the first
 * length check.
 *
 * Runs per property: FUZZ_RUNS (default 2000). FUZZ_SEED replays a failure.
 */

ed.hashes.sha512 = sha512

export const DEFAULT_RUNS = 2000

export interface FuzzReport {
  /** Inputs run per property name. */
  counts: Record<string, number>
  total: number
}

// ---------------------------------------------------------------------------
// Fixtures

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
function keyFromSeed (n: number): SigningKey {
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.alloc(32, n)]), format: 'der', type: 'pkcs8' })
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}

const KEY = keyFromSeed(7)
const OTHER = keyFromSeed(8)
const NET = networkIdFrom('fuzz-net')
const T = 1_764_000_000_000
const NOW = T + 1000

const POLICY: PolicyContext = {
  networkId: NET,
  allowlist: new Map([
    ['dns/cnames', [KEY.publicKey]],
    ['hello.txt', [KEY.publicKey, OTHER.publicKey]],
    ['gone', [KEY.publicKey]]
  ]),
  maxClockSkewMs: 600_000,
  nowMs: NOW
}

const V_FILE = newVersion({ name: 'dns/cnames', networkId: NET, privateKey: KEY.privateKey, signer: KEY.publicKey, content: Buffer.from('www IN CNAME web\n'), timestampMs: T })
const V_EXPIRING = newVersion({ name: 'hello.txt', networkId: NET, privateKey: OTHER.privateKey, signer: OTHER.publicKey, content: Buffer.from('hi'), timestampMs: T, expiresAtMs: T + 86_400_000 })
const V_TOMB = newVersion({ name: 'gone', networkId: NET, privateKey: KEY.privateKey, signer: KEY.publicKey, timestampMs: T })
const V_ATTACH: SignedVersion = { ...V_FILE, attachments: Uint8Array.from([1, 2, 3, 4, 5]) }
const VERSIONS = [V_FILE, V_EXPIRING, V_TOMB, V_ATTACH]
const CONTENT = new Map<SignedVersion, Uint8Array>([
  [V_FILE, Buffer.from('www IN CNAME web\n')], [V_EXPIRING, Buffer.from('hi')], [V_TOMB, new Uint8Array(0)], [V_ATTACH, Buffer.from('www IN CNAME web\n')]
])

const SAMPLE_MESSAGES: Message[] = [
  { type: MessageType.Summary, count: 3, digest: new Uint8Array(32).fill(9), peers: [{ id: '12D3KooWLPNruZ6cv4uxGsLL6dV9CXpuMK5yixXh7uVLyaHRbVAn', addrs: ['/ip4/10.0.0.1/tcp/7946', '/ip6/::1/tcp/1'] }] },
  { type: MessageType.Want, entries: [{ name: 'hello.txt', id: new Uint8Array(32).fill(3) }] },
  { type: MessageType.Version, version: V_FILE },
  { type: MessageType.Version, version: V_ATTACH },
  { type: MessageType.Chunk, data: Buffer.from('some content bytes') },
  { type: MessageType.NotFound, name: 'dns/cnames' },
  { type: MessageType.Push, version: V_EXPIRING, content: Buffer.from('hi') },
  { type: MessageType.Push, version: V_TOMB, content: undefined },
  { type: MessageType.Push, version: V_FILE, content: Buffer.from('www IN CNAME web\n') }
]
const SAMPLE_FRAMES = SAMPLE_MESSAGES.map(m => new Uint8Array(encodeMessage(m)))
const SAMPLE_ENVELOPES = VERSIONS.map(v => new Uint8Array(encodeEnvelope(v)))
const SAMPLE_HEADS = VERSIONS.map(v => new Uint8Array(encodePublishHead(v)))

// ---------------------------------------------------------------------------
// Mutations

type Mutation =
  | { kind: 'flip', at: number, bit: number }
  | { kind: 'set', at: number, value: number }
  | { kind: 'truncate', at: number }
  | { kind: 'insert', at: number, bytes: Uint8Array }
  | { kind: 'delete', at: number, n: number }
  | { kind: 'max16', at: number }
  | { kind: 'max32', at: number }

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('max16' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('max32' as const), at: fc.nat() })
)

function mutate (input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Buffer.from(input)
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1)
    switch (m.kind) {
      case 'flip': if (at < b.length) b[at] ^= 1 << m.bit; break
      case 'set': if (at < b.length) b[at] = m.value; break
      case 'truncate': b = b.subarray(0, at); break
      case 'insert': b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]); break
      case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]); break
      case 'max16': if (at + 2 <= b.length) b.fill(0xff, at, at + 2); break
      case 'max32': if (at + 4 <= b.length) b.fill(0xff, at, at + 4); break
    }
  }
  return new Uint8Array(b)
}

/** Random bytes, valid samples mutated, or a known type byte followed by random bytes. */
function bytesArb (samples: Uint8Array[], typeBytes: number[] = []): fc.Arbitrary<Uint8Array> {
  const arbs: Array<fc.Arbitrary<Uint8Array>> = [
    fc.uint8Array({ maxLength: 600 }),
    fc.tuple(fc.constantFrom(...samples), fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([s, ms]) => mutate(s, ms)),
    fc.tuple(fc.constantFrom(...samples), fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([s, ms]) => mutate(s, ms))
  ]
  if (typeBytes.length > 0) {
    arbs.push(fc.tuple(fc.constantFrom(...typeBytes), fc.uint8Array({ maxLength: 400 })).map(([t, rest]) => Uint8Array.of(t, ...rest)))
  }
  return fc.oneof(...arbs)
}

// ---------------------------------------------------------------------------
// Oracles

/** Calls `f`; any exception must be a DmError of one of `codes`. Returns undefined when it threw. */
function onlyDmError<T> (what: string, f: () => T, codes: string[]): T | undefined {
  try {
    return f()
  } catch (err) {
    if (!(err instanceof DmError)) throw new Error(`${what} threw a non-DmError: ${String((err as Error)?.stack ?? err)}`)
    if (!codes.includes(err.code)) throw new Error(`${what} threw ${err.code}, expected one of ${codes.join(', ')}: ${err.message}`)
    return undefined
  }
}

/** An independent check of a version's signature (noble, not node:crypto). */
function reallySigned (v: SignedVersion): boolean {
  try {
    return ed.verify(v.signature, signedBytes(v), v.signer)
  } catch {
    return false
  }
}

/**
 * A decoded version must not be believed unless genuinely signed by a listed
 * key for this network, and its content only when it hashes to the signed value.
 */
function policyHolds (v: SignedVersion, content: Uint8Array | undefined, counter?: Counter): void {
  const verdict = checkHeader(v, undefined, POLICY)
  if (verdict.ok) {
    if (counter !== undefined) counter.accepted++
    assert.ok(reallySigned(v), 'checkHeader accepted a version whose signature does not verify')
    assert.ok(Buffer.from(v.networkId).equals(NET), 'accepted for another network')
    assert.ok(POLICY.allowlist.get(v.name)?.some(k => Buffer.from(k).equals(v.signer)), 'accepted from an unlisted signer')
    assert.ok(v.size <= MAX_CONTENT_BYTES)
    assert.equal(nameProblem(v.name), undefined)
  }
  if (content !== undefined) {
    const body = checkContent(v, content)
    if (body.ok) {
      assert.equal(content.length, v.size)
      assert.ok(createHash('sha256').update(content).digest().equals(v.sha256), 'checkContent accepted content that does not hash to the signed value')
    }
  }
}

// ---------------------------------------------------------------------------
// Properties

/** Inputs run, inputs that decoded, decoded versions the policy accepted (all genuinely signed). */
interface Counter { n: number, decoded: number, accepted: number }

function messageProperty (counter: Counter): fc.IPropertyWithHooks<[Uint8Array]> {
  return fc.property(bytesArb(SAMPLE_FRAMES, [1, 2, 3, 4, 5, 6, 7, 0, 8, 255]), input => {
    counter.n++
    const m = onlyDmError('decodeMessage', () => decodeMessage(input), ['ERR_DECODE', 'ERR_NAME_INVALID'])
    if (m === undefined) return
    counter.decoded++
    assert.deepEqual(new Uint8Array(encodeMessage(m)), input, 'a decoded message re-encodes to other bytes')
    if (m.type === MessageType.Version) policyHolds(m.version, undefined, counter)
    if (m.type === MessageType.Push) policyHolds(m.version, m.content, counter)
  })
}

function envelopeProperty (counter: Counter): fc.IPropertyWithHooks<[Uint8Array]> {
  return fc.property(bytesArb(SAMPLE_ENVELOPES), input => {
    counter.n++
    const v = onlyDmError('decodeEnvelope', () => decodeEnvelope(input), ['ERR_DECODE', 'ERR_NAME_INVALID'])
    if (v === undefined) return
    counter.decoded++
    assert.deepEqual(new Uint8Array(encodeEnvelope(v)), input, 'a decoded envelope re-encodes to other bytes')
    assert.equal(nameProblem(v.name), undefined, 'an envelope decoded with an invalid name')
    assert.ok(v.kind === VersionKind.File || v.kind === VersionKind.Tombstone)
    policyHolds(v, undefined, counter)
  })
}

/** Envelopes built field by field from random values, signed or not. */
function structuredEnvelopeProperty (counter: Counter): fc.IPropertyWithHooks<[SignedVersion, boolean]> {
  const header = fc.record({
    kind: fc.constantFrom(VersionKind.File, VersionKind.Tombstone),
    networkId: fc.oneof(fc.constant(NET), fc.uint8Array({ minLength: 32, maxLength: 32 })),
    name: fc.oneof(fc.constantFrom('dns/cnames', 'hello.txt', 'gone', '../x', '/etc/passwd', 'a\0b', 'a//b', '.', 'x'.repeat(255)), fc.string({ maxLength: 40 })),
    timestampMs: fc.oneof(fc.constant(T), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    expiresAtMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    size: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    sha256: fc.uint8Array({ minLength: 32, maxLength: 32 })
  })
  const version = fc.tuple(header, fc.constantFrom(KEY, OTHER), fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.uint8Array({ maxLength: 16 }))
    .map(([h, key, sig, att]): SignedVersion => ({ ...h, signer: key.publicKey, signature: sig, attachments: att }))
  return fc.property(version, fc.boolean(), (v0, sign) => {
    counter.n++
    let v = v0
    if (Buffer.byteLength(v.name) > 0xffff) return
    // Signed with node:crypto (about 15 times faster than @noble/ed25519 here); checked with @noble/ed25519 (reallySigned).
    if (sign) v = { ...v, signature: nodeSign(null, signedBytes(v), (Buffer.from(v.signer).equals(KEY.publicKey) ? KEY : OTHER).privateKey) }
    const bytes = new Uint8Array(encodeEnvelope(v))
    const d = onlyDmError('decodeEnvelope', () => decodeEnvelope(bytes), ['ERR_DECODE', 'ERR_NAME_INVALID'])
    if (d === undefined) {
      // Only an invalid name or a too-long name may stop a well-formed envelope.
      assert.ok(nameProblem(v.name) !== undefined, `a well-formed envelope for "${v.name}" did not decode`)
      return
    }
    counter.decoded++
    const verdict = checkHeader(d, undefined, POLICY)
    if (!sign) assert.equal(verdict.ok, false, 'an unsigned (random-signature) version was accepted')
    policyHolds(d, undefined, counter)
  })
}

function publishHeadProperty (counter: Counter): fc.IPropertyWithHooks<[Uint8Array]> {
  return fc.property(bytesArb(SAMPLE_HEADS), input => {
    counter.n++
    const v = onlyDmError('decodePublishHead', () => decodePublishHead(input), ['ERR_DECODE', 'ERR_NAME_INVALID', 'ERR_TOO_LARGE'])
    if (v === undefined) return
    counter.decoded++
    assert.deepEqual(new Uint8Array(encodePublishHead(v)), input, 'a decoded publish head re-encodes to other bytes')
    policyHolds(v, undefined, counter)
  })
}

// Config: random text, TOML-ish text from a grammar, and structured configs serialised to TOML.

const KEYS = ['state_dir', 'log_level', 'max_clock_skew_ms', 'id', 'listen', 'bootstrap', 'mdns', 'push_pull_interval_ms', 'push_fanout', 'target_peers', 'socket', 'files', 'network', 'api', 'metrics', 'dns/cnames', '"a.sig/b"', '"a"', '__proto__', 'constructor']
const TABLES = ['[network]', '[api]', '[metrics]', '[files]', '[files.sub]', '[[files]]', '[network.x]', '[]', '[a.b.c]']
const B64 = publicKeyToBase64(KEY.publicKey)
const PEER = '12D3KooWLPNruZ6cv4uxGsLL6dV9CXpuMK5yixXh7uVLyaHRbVAn'

const tomlValue: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }).map(s => JSON.stringify(s)),
  fc.integer().map(String),
  fc.constantFrom('true', 'false', 'inf', '-inf', 'nan', '1e400', '0x7fffffffffffffff', '9223372036854775807', '-0', '1979-05-27T07:32:00Z', '07:32:00', '1_000', '"""multi\nline"""', "'literal'", '{}', '{ a = 1 }', '[]'),
  fc.constantFrom(JSON.stringify(B64), JSON.stringify([B64]), JSON.stringify([B64, B64]), '["AAAA"]', `["/ip4/1.2.3.4/tcp/1/p2p/${PEER}"]`, '["/ip4/0.0.0.0/tcp/7946"]', '["not-a-multiaddr"]', '"127.0.0.1:9464"', '"0.0.0.0:1"', '"debug"', '"loud"'),
  fc.array(fc.oneof(fc.integer().map(String), fc.string({ maxLength: 6 }).map(s => JSON.stringify(s))), { maxLength: 4 }).map(a => `[${a.join(', ')}]`)
)
const tomlLine: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 10 }).map(s => JSON.stringify(s))), tomlValue).map(([k, v]) => `${k} = ${v}`),
  fc.constantFrom(...TABLES),
  fc.string({ maxLength: 30 }),
  fc.constant('# comment'),
  fc.constant('')
)
/**
 * Up to 200 of any code points, lone surrogates included: what fc.string({ unit: 'binary' }) draws (a nat
 * mapped onto the code points in order), without its set-up, which maps all 1.1 million code points back
 * to their index (1.3-1.8 s of CPU per process, for shrinking).
 */
const anyCodePoints: fc.Arbitrary<string> = fc.array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 200 }).map(cps => String.fromCodePoint(...cps))
const tomlText: fc.Arbitrary<string> = fc.oneof(
  fc.array(tomlLine, { maxLength: 14 }).map(lines => lines.join('\n')),
  anyCodePoints,
  fc.uint8Array({ maxLength: 200 }).map(b => Buffer.from(b).toString('latin1'))
)

/** A structured config as an operator might write it, with random (often wrong) values. */
const structuredConfig: fc.Arbitrary<string> = fc.record({
  state_dir: fc.option(fc.oneof(fc.constantFrom('state', '/var/lib/dm', '', '\0'), fc.string({ maxLength: 10 })), { nil: undefined, freq: 2 }),
  log_level: fc.option(fc.constantFrom(...LOG_LEVELS, 'LOUD', ''), { nil: undefined, freq: 2 }),
  max_clock_skew_ms: fc.option(fc.oneof(fc.integer({ min: -10, max: 8 * 24 * 3600 * 1000 }), fc.double()), { nil: undefined, freq: 2 }),
  network: fc.option(fc.record({
    id: fc.option(fc.string({ maxLength: 10 }), { nil: undefined, freq: 2 }),
    listen: fc.option(fc.array(fc.constantFrom('/ip4/0.0.0.0/tcp/7946', '/ip6/::/tcp/1', 'tcp://x', ''), { maxLength: 3 }), { nil: undefined, freq: 2 }),
    bootstrap: fc.option(fc.array(fc.constantFrom(`/ip4/10.0.0.1/tcp/7946/p2p/${PEER}`, '/ip4/10.0.0.1/tcp/7946', `/p2p/${PEER}`), { maxLength: 3 }), { nil: undefined, freq: 2 }),
    mdns: fc.option(fc.oneof(fc.boolean(), fc.integer()), { nil: undefined, freq: 2 }),
    push_pull_interval_ms: fc.option(fc.integer({ min: -1, max: 100_000_000 }), { nil: undefined, freq: 2 }),
    push_fanout: fc.option(fc.integer({ min: -1, max: 100 }), { nil: undefined, freq: 2 }),
    target_peers: fc.option(fc.integer({ min: -1, max: 300 }), { nil: undefined, freq: 2 })
  }, { requiredKeys: [] }), { nil: undefined, freq: 2 }),
  api: fc.option(fc.record({ socket: fc.oneof(fc.constantFrom('api.sock', '/run/dm/api.sock', ''), fc.integer()) }), { nil: undefined, freq: 2 }),
  metrics: fc.option(fc.record({ listen: fc.constantFrom('', '127.0.0.1:9464', 'localhost:1', '[::1]:80', '0.0.0.0:9464', 'x') }), { nil: undefined, freq: 2 }),
  files: fc.option(fc.dictionary(
    fc.oneof(fc.constantFrom('a', 'a/b', 'a.sig/b', 'dns/cnames', '../x', '/abs', 'a//b', '__proto__', 'constructor', 'toString', 'x'.repeat(256)), fc.string({ maxLength: 12 })),
    fc.oneof(fc.constant([B64]), fc.constant([B64, B64]), fc.constant([]), fc.constant(['AAAA']), fc.constant('not a list'), fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 })),
    { maxKeys: 5 }
  ), { nil: undefined, freq: 2 })
}, { requiredKeys: [] }).map(toToml)

function tomlScalar (v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number') return Number.isFinite(v) ? (Number.isInteger(v) ? String(v) : v.toExponential()) : (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf')
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return `[${v.map(tomlScalar).join(', ')}]`
  return JSON.stringify(String(v))
}

function toToml (o: Record<string, unknown>): string {
  const lines: string[] = []
  for (const [k, v] of Object.entries(o)) {
    if (v !== undefined && (typeof v !== 'object' || Array.isArray(v))) lines.push(`${k} = ${tomlScalar(v)}`)
  }
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || typeof v !== 'object' || Array.isArray(v)) continue
    lines.push(`[${k}]`)
    for (const [kk, vv] of Object.entries(v as Record<string, unknown>)) if (vv !== undefined) lines.push(`${JSON.stringify(kk)} = ${tomlScalar(vv)}`)
  }
  return lines.join('\n')
}

function configProperty (counter: Counter, text: fc.Arbitrary<string>): fc.IPropertyWithHooks<[string]> {
  return fc.property(text, input => {
    counter.n++
    let cfg
    try {
      cfg = parseConfig(input, '/etc/dm/fuzz.toml')
      counter.decoded++
    } catch (err) {
      if (!(err instanceof ConfigError)) throw new Error(`parseConfig threw a non-ConfigError: ${String((err as Error)?.stack ?? err)}\ninput: ${JSON.stringify(input)}`)
      assert.ok(err instanceof DmError && err.code === 'ERR_CONFIG')
      assert.ok(err.problems.length > 0)
      return
    }
    // Whatever is accepted is valid: the daemon may use it without further checks.
    assert.ok(LOG_LEVELS.includes(cfg.logLevel))
    assert.ok(Number.isInteger(cfg.maxClockSkewMs) && cfg.maxClockSkewMs >= 0)
    assert.ok(cfg.network.id.length > 0)
    assert.ok(Number.isInteger(cfg.tuning.pushFanout) && cfg.tuning.pushFanout >= 1 && cfg.tuning.pushFanout <= 64)
    assert.deepEqual(tuningProblems(cfg.tuning), [])
    assert.ok(Number.isInteger(cfg.tuning.targetPeers) && cfg.tuning.targetPeers >= 1)
    assert.ok(cfg.tuning.pushPullIntervalMs >= 100)
    for (const a of [...cfg.network.listen, ...cfg.network.bootstrap]) assert.ok(typeof a === 'string' && a.startsWith('/'))
    for (const [name, keys] of cfg.files) {
      assert.equal(nameProblem(name), undefined, `accepted bad name ${JSON.stringify(name)}`)
      assert.ok(keys.length > 0 && keys.every(k => k.length === 32))
      const segs = name.split('/')
      for (let i = 1; i < segs.length; i++) assert.ok(!cfg.files.has(segs.slice(0, i).join('/')), `accepted conflicting names around ${name}`)
    }
  })
}

// ---------------------------------------------------------------------------

/** Runs every property `runs` times; throws on the first counterexample (fast-check prints the seed and path). */
export function runFuzz (runs = runsFromEnv(), log: (line: string) => void = line => console.log(line)): FuzzReport {
  const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined
  const params = { numRuns: runs, seed, endOnFailure: true }
  const counts: Record<string, number> = {}
  const run = <Ts extends unknown[]>(name: string, make: (c: Counter) => fc.IPropertyWithHooks<Ts>): void => {
    const counter: Counter = { n: 0, decoded: 0, accepted: 0 }
    const started = Date.now()
    fc.assert(make(counter), params)
    counts[name] = counter.n
    log(`fuzz ${name}: ${counter.n} inputs in ${Date.now() - started} ms (${counter.decoded} decoded${name.startsWith('parseConfig') ? '' : `, ${counter.accepted} accepted as genuinely signed`})`)
  }
  run('decodeMessage', messageProperty)
  run('decodeEnvelope', envelopeProperty)
  run('decodeEnvelope (structured, signed and unsigned)', structuredEnvelopeProperty)
  run('decodePublishHead', publishHeadProperty)
  run('parseConfig (TOML-ish text)', c => configProperty(c, tomlText))
  run('parseConfig (structured configs)', c => configProperty(c, structuredConfig))
  const total = Object.values(counts).reduce((a, b) => a + b, 0)
  log(`fuzz total: ${total} inputs (${runs} runs per property${seed !== undefined ? `, seed ${seed}` : ''})`)
  return { counts, total }
}

export function runsFromEnv (): number {
  const n = Number(process.env.FUZZ_RUNS ?? DEFAULT_RUNS)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`FUZZ_RUNS must be a positive integer, not ${process.env.FUZZ_RUNS ?? ''}`)
  return n
}
