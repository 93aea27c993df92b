import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fleetView, STALE_REFRESHES, type ReportSource } from '../../src/api/fleet-view.js'
import type { NodeReport, ReportedVersion } from '../../src/format/node-report.js'
import { covered, parseCoverage } from '../../src/cli/fleet.js'
import { dmError } from './helpers.js'

/* The fleet view from node reports, on an injected clock: every cell state, coverage, and nodes not heard from. */

const NOW = 1_764_000_000_000
const REFRESH = 600_000
const OLD = { name: 'dns/cnames', id: '1111111111111111', timestampMs: NOW - 60_000 }
const NEW = { name: 'dns/cnames', id: '2222222222222222', timestampMs: NOW - 1000 }

function source (peerId: string, held: ReportedVersion[], over: Partial<ReportSource> & { report?: Partial<NodeReport> } = {}): ReportSource {
  const { report, ...rest } = over
  return {
    peerId, key: `key-${peerId}`, name: peerId, self: false, timestampMs: NOW - 5000, expiresAtMs: NOW + 3 * REFRESH,
    // `report: undefined` given: no readable report.
    report: 'report' in over && report === undefined
      ? undefined
      : { format: 1, node: peerId, peerId, software: '0.1.0', peers: 2, certificateNotAfterMs: NOW + 1e9, refreshMs: REFRESH, held, truncated: false, refusals: [], refusalCounts: {}, ...report },
    ...rest
  }
}

const fleet = (): ReportSource[] => [
  source('a', [NEW], { self: true, expiresAtMs: 0, timestampMs: NOW }),
  source('b', [NEW]),
  source('c', [OLD]),
  source('d', []),
  source('e', [OLD], { report: { refusals: [{ name: 'dns/cnames', id: NEW.id, code: 'ERR_SIGNER_NOT_ALLOWED', atMs: NOW - 500 }] } })
]

test('fleet view: latest, behind, missing and refused (with its code) against the newest version; coverage', () => {
  const v = fleetView(fleet(), NOW)
  assert.equal(v.self, 'a')
  assert.deepEqual(v.nodes.map(n => n.heard), ['self', 'fresh', 'fresh', 'fresh', 'fresh'])
  assert.deepEqual(v.notHeardFrom, [])
  const [f] = v.files
  assert.equal(f.name, 'dns/cnames')
  assert.deepEqual(f.version, { id: NEW.id, timestampMs: NEW.timestampMs })
  assert.deepEqual(Object.fromEntries(Object.entries(f.cells).map(([p, c]) => [p, c.state])), { a: 'latest', b: 'latest', c: 'behind', d: 'missing', e: 'refused' })
  assert.equal(f.cells.e.code, 'ERR_SIGNER_NOT_ALLOWED')
  assert.equal(f.cells.c.id, OLD.id)
  assert.deepEqual([f.reached, f.total], [2, 5])
  assert.equal(f.coverage, 0.4)
})

test('fleet view: judged by an older version asked for, newer holders are ahead and count as reached; an unknown version makes holders behind', () => {
  const [f] = fleetView(fleet(), NOW, { name: 'dns/cnames', version: OLD.id + '00ff' }).files
  assert.deepEqual(f.version, { id: OLD.id, timestampMs: OLD.timestampMs })
  assert.deepEqual(Object.values(f.cells).map(c => c.state), ['ahead', 'ahead', 'latest', 'missing', 'latest'])
  assert.equal(f.reached, 4)
  const [u] = fleetView(fleet(), NOW, { name: 'dns/cnames', version: 'abcdefabcdefabcd' }).files
  assert.deepEqual(u.version, { id: 'abcdefabcdefabcd', timestampMs: null })
  assert.deepEqual(Object.values(u.cells).map(c => c.state), ['behind', 'behind', 'behind', 'missing', 'behind'])
  // A name nobody holds is still one row, every node missing.
  const [none] = fleetView(fleet(), NOW, { name: 'nobody/holds' }).files
  assert.equal(none.version, null)
  assert.equal(none.reached, 0)
})

test('fleet view: silence past two refresh intervals, an expired report and an unreadable one are not heard from; cells unknown without a report', () => {
  const sources = [
    source('a', [NEW], { self: true, expiresAtMs: 0, timestampMs: NOW }),
    source('stale', [NEW], { timestampMs: NOW - STALE_REFRESHES * REFRESH - 1 }),
    source('edge', [NEW], { timestampMs: NOW - STALE_REFRESHES * REFRESH }),
    source('expired', [], { timestampMs: NOW - 3 * REFRESH, expiresAtMs: NOW, report: undefined }),
    source('liar', [], { report: undefined, problem: 'node report has a bad "peerId"' }),
    source('cut', [], { report: { truncated: true } })
  ]
  const v = fleetView(sources, NOW)
  assert.deepEqual(v.nodes.map(n => [n.peerId, n.heard]), [['a', 'self'], ['cut', 'fresh'], ['edge', 'fresh'], ['expired', 'expired'], ['liar', 'unreadable'], ['stale', 'stale']])
  assert.deepEqual(v.notHeardFrom, ['expired', 'liar', 'stale'])
  const [f] = v.files
  assert.deepEqual([f.cells.expired.state, f.cells.liar.state, f.cells.cut.state, f.cells.stale.state], ['unknown', 'unknown', 'unknown', 'latest'])
  assert.equal(f.total, 6)
})

test('dm wait: coverage shares parse and compare without rounding surprises', () => {
  assert.equal(parseCoverage('100%'), 1)
  assert.equal(parseCoverage('90%'), 0.9)
  assert.equal(parseCoverage('0.5'), 0.5)
  for (const bad of ['0%', '101%', '1.5', 'all', '']) assert.throws(() => parseCoverage(bad), dmError('ERR_USAGE'), bad)
  assert.equal(covered(3, 3, 1), true)
  assert.equal(covered(2, 3, 1), false)
  assert.equal(covered(9, 10, 0.9), true)
  assert.equal(covered(2, 3, 0.67), false)
  assert.equal(covered(0, 0, 0.5), false)
})
