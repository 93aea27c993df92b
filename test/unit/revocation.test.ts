import { test } from 'node:test'
import assert from 'node:assert/strict'
import { networkIdFrom, newVersion, versionId } from '../../src/format/version.ts'
import { checkHeader, effectiveHeld, type PolicyContext } from '../../src/policy/accept.ts'
import { REVOCATIONS_NAME, encodeRevocations, parseRevocations, revokedReason } from '../../src/policy/revocation.ts'
import { dmError, testKey } from './helpers.ts'

const NET = networkIdFrom('revocation')
const network = testKey(61)
const admin = testKey(62)
const mallory = testKey(63)
const sign = (name: string, key: ReturnType<typeof testKey>, t = 1000) =>
  newVersion({ name, content: Buffer.from('x'), networkId: NET, privateKey: key.privateKey, signer: key.publicKey, timestampMs: t })
const list = { signers: [{ key: mallory.publicKey, reason: 'laptop stolen', revokedAtMs: 5 }], nodes: [] }
const ctx = (revoked = true): PolicyContext => ({
  networkId: NET, networkKey: network.publicKey, allowlist: new Map([['keys', [admin.publicKey, mallory.publicKey]]]),
  maxClockSkewMs: 60_000, nowMs: 10_000, revocations: revoked ? list : undefined
})

test('the list round-trips, and malformed lists are refused naming the entry', () => {
  const back = parseRevocations(encodeRevocations(list))
  assert.equal(revokedReason(back.signers, mallory.publicKey), 'laptop stolen')
  assert.equal(revokedReason(back.signers, admin.publicKey), undefined)
  assert.throws(() => parseRevocations(Buffer.from('not json')), dmError('ERR_DECODE'))
  assert.throws(() => parseRevocations(Buffer.from('[]')), dmError('ERR_DECODE'))
  assert.throws(() => parseRevocations(Buffer.from('{"signers":[{"key":"AAAA"}]}')), dmError('ERR_DECODE', /signers\[0\]\.key/))
  assert.throws(() => parseRevocations(Buffer.from('{"signers":[{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}')), dmError('ERR_DECODE'), 'a small-order key is not a key')
})

test('a revoked signer is refused with ERR_REVOKED, and what it signed no longer counts as held', () => {
  const hostile = sign('keys', mallory, 2000)
  assert.equal(checkHeader(hostile, undefined, ctx(false)).ok, true)
  const r = checkHeader(hostile, undefined, ctx())
  assert.equal(r.ok === false && r.code, 'ERR_REVOKED')
  const held = { name: 'keys', version: hostile, timestampMs: hostile.timestampMs, id: versionId(hostile), present: true }
  assert.equal(effectiveHeld(ctx(), held), undefined)
  // So an admin's version older than the hostile one is accepted.
  assert.equal(checkHeader(sign('keys', admin, 1000), effectiveHeld(ctx(), held), ctx()).ok, true)
})

test('only the network key may sign the revocation list, whatever [files] says', () => {
  const withListed = { ...ctx(false), allowlist: new Map([[REVOCATIONS_NAME, [admin.publicKey]]]) }
  assert.equal(checkHeader(sign(REVOCATIONS_NAME, network), undefined, withListed).ok, true)
  const byAdmin = checkHeader(sign(REVOCATIONS_NAME, admin), undefined, withListed)
  assert.equal(byAdmin.ok === false && byAdmin.code, 'ERR_SIGNER_NOT_ALLOWED')
  const open = checkHeader(sign(REVOCATIONS_NAME, network), undefined, { ...withListed, networkKey: undefined })
  assert.equal(open.ok === false && open.code, 'ERR_NAME_NOT_ALLOWED', 'an open mesh has no revocation list')
})
