import { test } from 'node:test'
import assert from 'node:assert/strict'
import { judgeHealth } from '../../src/daemon/health.ts'
import { describeDialError } from '../../src/net/dial-error.ts'

test('a node with nobody to reach, or with everything it needs, is ok', () => {
  assert.deepEqual(judgeHealth({ peersConnected: 0, peersExpected: 0, lastDialError: undefined, missing: 0 }), { state: 'ok', reasons: [], reasonCodes: [] })
  assert.deepEqual(judgeHealth({ peersConnected: 3, peersExpected: 5, lastDialError: 'x', missing: 0 }), { state: 'ok', reasons: [], reasonCodes: [] })
})

test('no peer while some are known, or held files missing, is degraded, with one reason each', () => {
  const h = judgeHealth({ peersConnected: 0, peersExpected: 2, lastDialError: 'connection refused', missing: 3 })
  assert.equal(h.state, 'degraded')
  assert.deepEqual(h.reasonCodes, ['NO_PEER_CONNECTED', 'FILES_MISSING'])
  assert.equal(h.reasons.length, 2)
  // The dial error is carried into the sentence (it has no code of its own yet).
  assert.ok(h.reasons[0].includes('connection refused'), h.reasons[0])
})

test('dial errors get a code, and words an operator can act on that keep libp2p\'s own text', () => {
  const refused = describeDialError(Object.assign(new Error('All multiaddr dials failed'), { errors: [new Error('connect ECONNREFUSED 127.0.0.1:1')] }))
  assert.equal(refused.code, 'CONNECTION_REFUSED')
  assert.ok(refused.words.endsWith('connect ECONNREFUSED 127.0.0.1:1'), refused.words)
  assert.equal(describeDialError(new Error('Payload identity key 12D3KooWA does not match expected remote identity key 12D3KooWB')).code, 'WRONG_PEER')
  assert.equal(describeDialError(new Error('The operation was aborted due to timeout')).code, 'TIMEOUT')
  assert.equal(describeDialError(new Error('getaddrinfo ENOTFOUND nowhere.invalid')).code, 'UNREACHABLE')
  assert.equal(describeDialError(new Error('something new')).code, 'OTHER')
})

test('this node\'s membership certificate: a warning within 14 days of its end, degraded once expired or not yet valid', () => {
  const DAY = 86_400_000
  const now = 1_800_000_000_000
  const base = { peersConnected: 1, peersExpected: 1, lastDialError: undefined, missing: 0, nowMs: now }
  const at = (notBeforeMs: number, notAfterMs: number): ReturnType<typeof judgeHealth> => judgeHealth({ ...base, certificate: { notBeforeMs, notAfterMs } })
  assert.deepEqual(at(now - DAY, now + 15 * DAY), { state: 'ok', reasons: [], reasonCodes: [] })
  const soon = at(now - DAY, now + 13 * DAY)
  assert.equal(soon.state, 'ok')
  assert.deepEqual(soon.warningCodes, ['CERT_EXPIRING'])
  assert.equal(soon.warnings?.length, 1)
  assert.ok(soon.warnings?.[0].includes(new Date(now + 13 * DAY).toISOString()), soon.warnings?.[0])
  const expired = at(now - 2 * DAY, now - DAY)
  assert.equal(expired.state, 'degraded')
  assert.deepEqual(expired.reasonCodes, ['CERT_EXPIRED'])
  assert.equal(expired.reasons.length, 1)
  assert.equal(expired.warnings, undefined)
  assert.deepEqual(at(now + DAY, now + 90 * DAY).reasonCodes, ['CERT_NOT_YET_VALID'], 'not yet valid')
  assert.deepEqual(at(now - DAY, now).reasonCodes, ['CERT_EXPIRED'], 'the end of the window is outside it')
})
