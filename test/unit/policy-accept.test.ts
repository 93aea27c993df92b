import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  EMPTY_SHA256, MAX_CONTENT_BYTES, VersionKind, decodeEnvelope, encodeEnvelope, hex, networkIdFrom, newVersion, sha256,
  signVersion, versionId, type SignedVersion
} from '../../src/format/version.js'
import { checkContent, checkHeader, checkVersion, type PolicyContext, type Verdict } from '../../src/policy/accept.js'
import { testKey } from './helpers.js'

const NOW = 1_764_000_000_000
const SKEW = 10 * 60 * 1000
const NET = networkIdFrom('policy-net')
const alice = testKey(11)
const bob = testKey(12)
const carol = testKey(13)

function ctx (over: Partial<PolicyContext> = {}): PolicyContext {
  return {
    networkId: NET,
    allowlist: new Map([
      ['dns/cnames', [alice.publicKey, carol.publicKey]],
      ['hosts', [bob.publicKey]]
    ]),
    maxClockSkewMs: SKEW,
    nowMs: NOW,
    ...over
  }
}

function make (o: { name?: string, content?: Uint8Array | null, timestampMs?: number, expiresAtMs?: number, key?: typeof alice, networkId?: Uint8Array } = {}): SignedVersion {
  const key = o.key ?? alice
  return newVersion({
    name: o.name ?? 'dns/cnames',
    networkId: o.networkId ?? NET,
    privateKey: key.privateKey,
    signer: key.publicKey,
    content: o.content === null ? undefined : (o.content ?? Buffer.from('hello')),
    timestampMs: o.timestampMs ?? NOW - 1000,
    expiresAtMs: o.expiresAtMs ?? 0
  })
}

function held (v: SignedVersion): { timestampMs: number, id: Uint8Array } {
  return { timestampMs: v.timestampMs, id: versionId(v) }
}

function assertRefused (verdict: Verdict, code: string, retryable = false): void {
  assert.equal(verdict.ok, false, `expected ${code}, got acceptance`)
  if (verdict.ok) return
  assert.equal(verdict.code, code, verdict.reason)
  assert.equal(verdict.retryable, retryable, `retryable for ${code}`)
  assert.ok(verdict.reason.length > 0 && !verdict.reason.includes('\n'))
}

test('accepts a valid version and returns its id', () => {
  const v = make()
  const verdict = checkVersion(v, Buffer.from('hello'), undefined, ctx())
  assert.ok(verdict.ok)
  if (verdict.ok) assert.equal(hex(verdict.id), hex(versionId(v)))
  // Any listed signer for the name.
  assert.ok(checkHeader(make({ key: carol }), undefined, ctx()).ok)
  assert.ok(checkHeader(make({ key: bob, name: 'hosts' }), undefined, ctx()).ok)
})

test('ERR_WRONG_NETWORK: signed for another network id', () => {
  assertRefused(checkHeader(make({ networkId: networkIdFrom('other-net') }), undefined, ctx()), 'ERR_WRONG_NETWORK')
})

test('ERR_NAME_NOT_ALLOWED: name not in the allowlist', () => {
  assertRefused(checkHeader(make({ name: 'dns/other' }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  // Allowlist entries are exact names, not prefixes.
  assertRefused(checkHeader(make({ name: 'dns' }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  assertRefused(checkHeader(make({ name: 'dns/cnames/x' }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
})

test('ERR_SIGNER_NOT_ALLOWED: a valid signature from a key not listed for that name', () => {
  assertRefused(checkHeader(make({ key: bob }), undefined, ctx()), 'ERR_SIGNER_NOT_ALLOWED')
  // Listed for another name does not help.
  assertRefused(checkHeader(make({ key: alice, name: 'hosts' }), undefined, ctx()), 'ERR_SIGNER_NOT_ALLOWED')
})

test('ERR_TOO_LARGE: declared size above the limit', () => {
  const big = signVersion({
    kind: VersionKind.File, networkId: NET, name: 'dns/cnames', timestampMs: NOW - 1, expiresAtMs: 0,
    size: MAX_CONTENT_BYTES + 1, sha256: new Uint8Array(32)
  }, alice.privateKey, alice.publicKey)
  assertRefused(checkHeader(big, undefined, ctx()), 'ERR_TOO_LARGE')
  const atLimit = signVersion({ ...big, size: MAX_CONTENT_BYTES }, alice.privateKey, alice.publicKey)
  assert.ok(checkHeader(atLimit, undefined, ctx()).ok)
})

test('ERR_BAD_SIGNATURE: one flipped byte in the signature or in a signed field', () => {
  const v = make()
  for (let i = 0; i < 64; i += 7) {
    const sig = Uint8Array.from(v.signature); sig[i] ^= 0x40
    assertRefused(checkHeader({ ...v, signature: sig }, undefined, ctx()), 'ERR_BAD_SIGNATURE')
  }
  // Flip a byte of the signed hash inside the envelope, as it would arrive from a peer.
  const env = encodeEnvelope(v)
  const hashOffset = 22 + 1 + 32 + 2 + Buffer.byteLength(v.name) + 24
  env[hashOffset + 5] ^= 0x01
  const tampered = decodeEnvelope(env)
  assertRefused(checkHeader(tampered, undefined, ctx()), 'ERR_BAD_SIGNATURE')
  // A signature by a listed key that is not the claimed signer.
  const byCarol = make({ key: carol })
  assertRefused(checkHeader({ ...byCarol, signer: alice.publicKey }, undefined, ctx()), 'ERR_BAD_SIGNATURE')
})

test('ERR_CONTENT_MISMATCH: wrong size, then wrong hash', () => {
  const v = make({ content: Buffer.from('hello') })
  assertRefused(checkContent(v, Buffer.from('hell')), 'ERR_CONTENT_MISMATCH')
  assertRefused(checkContent(v, Buffer.from('hello!')), 'ERR_CONTENT_MISMATCH')
  const sameSize = checkContent(v, Buffer.from('jello'))
  assertRefused(sameSize, 'ERR_CONTENT_MISMATCH')
  if (!sameSize.ok) assert.match(sameSize.reason, /SHA-256/)
  assert.ok(checkContent(v, Buffer.from('hello')).ok)
  assertRefused(checkVersion(v, Buffer.from('jello'), undefined, ctx()), 'ERR_CONTENT_MISMATCH')
})

test('ERR_CONTENT_MISMATCH: a tombstone that declares content', () => {
  const withSize = signVersion({
    kind: VersionKind.Tombstone, networkId: NET, name: 'dns/cnames', timestampMs: NOW - 1, expiresAtMs: 0, size: 5, sha256: sha256(Buffer.from('hello'))
  }, alice.privateKey, alice.publicKey)
  assertRefused(checkHeader(withSize, undefined, ctx()), 'ERR_CONTENT_MISMATCH')
  const withHash = signVersion({
    kind: VersionKind.Tombstone, networkId: NET, name: 'dns/cnames', timestampMs: NOW - 1, expiresAtMs: 0, size: 0, sha256: sha256(Buffer.from('x'))
  }, alice.privateKey, alice.publicKey)
  assertRefused(checkHeader(withHash, undefined, ctx()), 'ERR_CONTENT_MISMATCH')
  const proper = make({ content: null })
  assert.equal(proper.kind, VersionKind.Tombstone)
  assert.deepEqual(proper.sha256, EMPTY_SHA256)
  assert.ok(checkVersion(proper, new Uint8Array(0), undefined, ctx()).ok)
})

test('ERR_STALE: older than the held version', () => {
  const old = make({ timestampMs: NOW - 2000 })
  const cur = make({ timestampMs: NOW - 1000, content: Buffer.from('newer') })
  assertRefused(checkHeader(old, held(cur), ctx()), 'ERR_STALE')
  assert.ok(checkHeader(cur, held(old), ctx()).ok)
  // A tombstone follows the same order.
  const del = make({ timestampMs: NOW - 500, content: null })
  assert.ok(checkHeader(del, held(cur), ctx()).ok)
  assertRefused(checkHeader(cur, held(del), ctx()), 'ERR_STALE')
})

test('ERR_ALREADY_HELD: the same version again, whatever its attachments', () => {
  const v = make()
  assertRefused(checkHeader(v, held(v), ctx()), 'ERR_ALREADY_HELD')
  assertRefused(checkHeader({ ...v, attachments: Uint8Array.of(1) }, held(v), ctx()), 'ERR_ALREADY_HELD')
})

test('tie-break: equal timestamps, the larger version id wins, symmetric and deterministic', () => {
  const ts = NOW - 1000
  const a = make({ timestampMs: ts, content: Buffer.from('one') })
  const b = make({ timestampMs: ts, content: Buffer.from('two'), key: carol })
  const [small, big] = Buffer.compare(versionId(a), versionId(b)) < 0 ? [a, b] : [b, a]
  assert.ok(Buffer.compare(versionId(small), versionId(big)) < 0)
  for (let i = 0; i < 3; i++) {
    assert.ok(checkHeader(big, held(small), ctx()).ok, 'the larger id must replace the smaller')
    const r = checkHeader(small, held(big), ctx())
    assertRefused(r, 'ERR_STALE')
    if (!r.ok) assert.match(r.reason, /tie-break/)
  }
  // Whatever order two nodes see them in, both end on `big`.
  for (const order of [[a, b], [b, a]]) {
    let cur: SignedVersion | undefined
    for (const v of order) {
      if (checkHeader(v, cur === undefined ? undefined : held(cur), ctx()).ok) cur = v
    }
    assert.equal(hex(versionId(cur!)), hex(versionId(big)))
  }
})

test('ERR_FUTURE_TIMESTAMP is retryable, and the same version is accepted once the clock advances', () => {
  const ahead = make({ timestampMs: NOW + SKEW + 1 })
  assertRefused(checkHeader(ahead, undefined, ctx()), 'ERR_FUTURE_TIMESTAMP', true)
  assert.ok(checkHeader(ahead, undefined, ctx({ nowMs: NOW + 1 })).ok)
  // Exactly at the skew bound is fine.
  assert.ok(checkHeader(make({ timestampMs: NOW + SKEW }), undefined, ctx()).ok)
  // With no tolerated skew, one millisecond ahead is refused.
  assertRefused(checkHeader(make({ timestampMs: NOW + 1 }), undefined, ctx({ maxClockSkewMs: 0 })), 'ERR_FUTURE_TIMESTAMP', true)
})

test('a forged future-dated version is ERR_BAD_SIGNATURE, never retryable', () => {
  const ahead = make({ timestampMs: NOW + SKEW + 1 })
  const sig = Uint8Array.from(ahead.signature); sig[0] ^= 1
  assertRefused(checkHeader({ ...ahead, signature: sig }, undefined, ctx()), 'ERR_BAD_SIGNATURE', false)
})

test('ERR_EXPIRED: expired by the local clock, or expiring before it was signed', () => {
  assertRefused(checkHeader(make({ expiresAtMs: NOW - 1 }), undefined, ctx()), 'ERR_EXPIRED')
  assertRefused(checkHeader(make({ expiresAtMs: NOW }), undefined, ctx()), 'ERR_EXPIRED')
  assert.ok(checkHeader(make({ expiresAtMs: NOW + 1 }), undefined, ctx()).ok)
  assertRefused(checkHeader(make({ timestampMs: NOW + 1000, expiresAtMs: NOW + 1000 }), undefined, ctx()), 'ERR_EXPIRED')
  assertRefused(checkHeader(make({ timestampMs: NOW + 1000, expiresAtMs: NOW + 999 }), undefined, ctx()), 'ERR_EXPIRED')
  // Accepted now, refused once the clock passes the expiry.
  const v = make({ expiresAtMs: NOW + 60_000 })
  assert.ok(checkHeader(v, undefined, ctx()).ok)
  assertRefused(checkHeader(v, undefined, ctx({ nowMs: NOW + 60_000 })), 'ERR_EXPIRED')
})

test('order of checks: cheap refusals come before the signature check', () => {
  const forged = (v: SignedVersion): SignedVersion => { const s = Uint8Array.from(v.signature); s[1] ^= 1; return { ...v, signature: s } }
  assertRefused(checkHeader(forged(make({ networkId: networkIdFrom('x') })), undefined, ctx()), 'ERR_WRONG_NETWORK')
  assertRefused(checkHeader(forged(make({ name: 'nope' })), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  assertRefused(checkHeader(forged(make({ key: bob })), undefined, ctx()), 'ERR_SIGNER_NOT_ALLOWED')
  assertRefused(checkHeader(forged(make({ expiresAtMs: NOW - 1 })), undefined, ctx()), 'ERR_EXPIRED')
  const cur = make({ timestampMs: NOW })
  assertRefused(checkHeader(forged(make({ timestampMs: NOW - 1 })), held(cur), ctx()), 'ERR_STALE')
  assertRefused(checkHeader(forged(cur), held(cur), ctx()), 'ERR_ALREADY_HELD')
  // The network check precedes the allowlist, which precedes the signer list.
  assertRefused(checkHeader(make({ networkId: networkIdFrom('x'), name: 'nope', key: bob }), undefined, ctx()), 'ERR_WRONG_NETWORK')
  assertRefused(checkHeader(make({ name: 'nope', key: bob }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  // A bad header is reported before a content mismatch.
  assertRefused(checkVersion(make({ key: bob }), Buffer.from('other'), undefined, ctx()), 'ERR_SIGNER_NOT_ALLOWED')
})

test('the policy is pure: the same input gives the same verdict', () => {
  const v = make()
  const c = ctx()
  const first = checkHeader(v, undefined, c)
  const second = checkHeader(v, undefined, c)
  assert.deepEqual(first, second)
})
