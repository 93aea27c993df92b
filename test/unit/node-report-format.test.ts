import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeNodeReport, MAX_REPORT_BYTES, MAX_REPORTED_REFUSALS, parseNodeReport, type NodeReport } from '../../src/format/node-report.js'
import { createRefusalLog } from '../../src/daemon/refusal-log.js'
import { networkIdFrom, newVersion } from '../../src/format/version.js'
import fs from 'node:fs'
import path from 'node:path'
import { nodeReportName } from '../../src/policy/node-reports.js'
import { peerIdOfKey } from '../../src/net/identity.js'
import { dmError, keyFromSeed, REPO_ROOT, testKey } from './helpers.js'

/* The node report's bytes: round trip, the size bound and truncation, hostile content, the bounded refusal log. */

function report (over: Partial<NodeReport> = {}): NodeReport {
  return {
    format: 1, node: 'web-1', peerId: '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN', software: '0.1.0', peers: 3,
    certificateNotAfterMs: 1_771_776_000_000, refreshMs: 600_000, truncated: false,
    held: [{ name: 'dns/cnames', id: '548bc6db81461abe', timestampMs: 1_764_000_000_000 }],
    refusals: [{ name: 'hello.txt', id: '0123456789abcdef', code: 'ERR_SIGNER_NOT_ALLOWED', atMs: 1_764_000_001_000 }],
    refusalCounts: { ERR_SIGNER_NOT_ALLOWED: 2 },
    ...over
  }
}

test('node report: encodes as the JSON of docs/PROTOCOL.md section 14.2 and parses back', () => {
  const bytes = encodeNodeReport(report())
  assert.deepEqual(JSON.parse(bytes.toString()), {
    format: 1, node: 'web-1', peerId: '12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN', software: '0.1.0', peers: 3,
    certificateNotAfterMs: 1771776000000, refreshMs: 600000, truncated: false,
    refusals: [['hello.txt', '0123456789abcdef', 'ERR_SIGNER_NOT_ALLOWED', 1764000001000]],
    refusalCounts: { ERR_SIGNER_NOT_ALLOWED: 2 },
    held: [['dns/cnames', '548bc6db81461abe', 1764000000000]]
  })
  assert.deepEqual(parseNodeReport(bytes), report())
})

test('node report: a held list past the size bound is cut to fit and flagged truncated; a full name costs at most 300 bytes', () => {
  const name = (i: number): string => `${'n'.repeat(200)}/${'x'.repeat(48)}${String(i).padStart(6, '0')}`
  const held = Array.from({ length: 4000 }, (_, i) => ({ name: name(i), id: 'ffffffffffffffff', timestampMs: Number.MAX_SAFE_INTEGER }))
  assert.ok(JSON.stringify([held[0].name, held[0].id, held[0].timestampMs]).length + 1 <= 300)
  const bytes = encodeNodeReport(report({ held }))
  assert.ok(bytes.length <= MAX_REPORT_BYTES, `${bytes.length} bytes`)
  assert.ok(bytes.length > MAX_REPORT_BYTES - 300, 'filled up to the bound')
  const back = parseNodeReport(bytes)
  assert.equal(back.truncated, true)
  assert.ok(back.held.length > 3000 && back.held.length < 4000)
  assert.deepEqual(back.held, held.slice(0, back.held.length))
  assert.equal(parseNodeReport(encodeNodeReport(report({ held: held.slice(0, 10) }))).truncated, false)
})

test('node report: hostile content is ERR_DECODE', () => {
  const mutate = (f: (d: Record<string, unknown>) => void): Buffer => {
    const d = JSON.parse(encodeNodeReport(report()).toString())
    f(d)
    return Buffer.from(JSON.stringify(d))
  }
  const cases: Array<[string, Buffer]> = [
    ['not JSON', Buffer.from('{')],
    ['an array', Buffer.from('[]')],
    ['another format', mutate(d => { d.format = 2 })],
    ['a bad name', mutate(d => { d.held = [['../etc/passwd', '548bc6db81461abe', 1]] })],
    ['a long id', mutate(d => { d.held = [['a', '548bc6db81461abe00', 1]] })],
    ['a negative time', mutate(d => { d.held = [['a', '548bc6db81461abe', -1]] })],
    ['a control character in the node name', mutate(d => { d.node = 'a\u001b[31m' })],
    ['a bad code', mutate(d => { d.refusals = [['a', '548bc6db81461abe', 'rm -rf', 1]] })],
    ['too many refusals', mutate(d => { d.refusals = Array.from({ length: MAX_REPORTED_REFUSALS + 1 }, () => ['a', '548bc6db81461abe', 'ERR_X', 1]) })],
    ['a bad count', mutate(d => { d.refusalCounts = { ERR_X: 1.5 } })],
    ['no truncated flag', mutate(d => { delete d.truncated })],
    ['too large', Buffer.alloc(MAX_REPORT_BYTES + 1, 0x20)]
  ]
  for (const [what, bytes] of cases) assert.throws(() => parseNodeReport(bytes), dmError('ERR_DECODE'), what)
})

test('refusal log: keeps the last distinct refusals, most recent first, counts every one, skips routine and report refusals', () => {
  const key = testKey(40)
  const version = (name: string, t: number): ReturnType<typeof newVersion> =>
    newVersion({ name, networkId: networkIdFrom('x'), privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('x'), timestampMs: t })
  const log = createRefusalLog()
  const a = version('a', 1)
  assert.equal(log.record(a, 'ERR_SIGNER_NOT_ALLOWED', 10), true)
  assert.equal(log.record(a, 'ERR_SIGNER_NOT_ALLOWED', 11), false, 'the same refusal again is not news')
  assert.equal(log.record(version('b', 1), 'ERR_STALE', 12), false)
  assert.equal(log.record(version('b', 1), 'ERR_ALREADY_HELD', 12), false)
  assert.equal(log.record(version(`_dm/nodes/${'A'.repeat(43)}`, 1), 'ERR_CERT_EXPIRED', 12), false)
  for (let i = 0; i < 40; i++) log.record(version(`f${i}`, i), 'ERR_NAME_NOT_ALLOWED', 100 + i)
  const recent = log.recent()
  assert.equal(recent.length, MAX_REPORTED_REFUSALS)
  assert.equal(recent[0].name, 'f39')
  assert.equal(recent.at(-1)?.name, 'f8')
  assert.deepEqual(log.counts(), { ERR_SIGNER_NOT_ALLOWED: 2, ERR_NAME_NOT_ALLOWED: 40 })
})

test('node report: the worked example of docs/PROTOCOL.md section 14.2 parses and encodes back to the same bytes', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/PROTOCOL.md'), 'utf8')
  const example = /<!-- node-report-example -->\n```json\n(.*)\n```/.exec(doc)?.[1]
  assert.ok(example !== undefined, 'the example is in the document')
  const parsed = parseNodeReport(Buffer.from(example))
  assert.equal(encodeNodeReport(parsed).toString(), example)
  const node = keyFromSeed(Buffer.alloc(32, 0x42))
  assert.equal(parsed.peerId, peerIdOfKey(node.publicKey))
  assert.ok(doc.includes(nodeReportName(node.publicKey)))
})
