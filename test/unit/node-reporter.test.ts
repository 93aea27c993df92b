import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CertKind, encodeCertificate, signCertificate, type Certificate } from '../../src/format/certificate.js'
import { withCertificates } from '../../src/format/attachments.js'
import { encodeNodeReport, parseNodeReport, type NodeReport } from '../../src/format/node-report.js'
import { networkIdFrom, newVersion } from '../../src/format/version.js'
import { nodeReportName } from '../../src/policy/node-reports.js'
import { createAcceptor } from '../../src/sync/acceptor.js'
import { LOCAL_SOURCE, type Acceptor } from '../../src/sync/acceptor-api.js'
import { createNodeReporter, type NodeReporter } from '../../src/daemon/node-report.js'
import { createFleet } from '../../src/daemon/fleet.js'
import { peerIdOfKey } from '../../src/net/identity.js'
import { memoryStore } from '../../src/sim/memory-store.js'
import { Scheduler } from '../../src/sim/scheduler.js'
import type { Store } from '../../src/store/store.js'
import { silentLog } from '../../src/util/log.js'
import { testKey } from './helpers.js'

/*
 * The daemon side of node reports on virtual time: when the reporter
 * publishes (at start, on change but rate-limited, on refresh, never after
 * stop), what its report holds, and the fleet view built from held reports
 * (names from certificates, lying peer ids, expiry, revocation).
 */

const NOW = 1_764_000_000_000
const DAY = 86_400_000
const NET = networkIdFrom('reports')
const network = testKey(60)
const self = testKey(61)
const other = testKey(62)
const publisher = testKey(63)
const stranger = testKey(64)
const TUNING = { nodeReportMinIntervalMs: 1000, nodeReportRefreshMs: 10_000 }

function membership (key: typeof self, name: string): { cert: Certificate, bytes: Uint8Array } {
  const cert = signCertificate({ kind: CertKind.Membership, subject: key.publicKey, notBeforeMs: NOW - DAY, notAfterMs: NOW + DAY, name, issuer: network.publicKey }, network.privateKey)
  return { cert, bytes: encodeCertificate(cert) }
}

interface World { clock: Scheduler, store: Store, acceptor: Acceptor, reporter: NodeReporter, reports: () => number, peers: { n: number } }

function world (): World {
  const clock = new Scheduler(NOW)
  const store = memoryStore(clock)
  const acceptor = createAcceptor({ store, clock, log: silentLog }, {
    policy: { networkId: NET, allowlist: new Map([['dns/cnames', [publisher.publicKey]]]), namespaces: new Map(), networkKey: network.publicKey, maxClockSkewMs: 600_000 },
    tuning: { expirySweepMs: 1000 }
  })
  acceptor.start()
  const peers = { n: 0 }
  const own = membership(self, 'web-1')
  const reporter = createNodeReporter({ acceptor, store, clock, log: silentLog, networkId: NET, identity: self, peerId: peerIdOfKey(self.publicKey), certificate: () => own, peers: () => peers.n }, TUNING)
  let reports = 0
  acceptor.events.on('accepted', ({ entry }) => { if (entry.name === nodeReportName(self.publicKey)) reports++ })
  return { clock, store, acceptor, reporter, reports: () => reports, peers }
}

const file = async (w: World, t: number, key = publisher): Promise<unknown> => {
  const v = newVersion({ name: 'dns/cnames', networkId: NET, privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from(`v${t}`), timestampMs: t })
  return await w.acceptor.ingest(v, Buffer.from(`v${t}`), LOCAL_SOURCE)
}

test('reporter: publishes at start, coalesces changes within the least interval, refreshes when idle, stops with stop()', async () => {
  const w = world()
  w.reporter.start()
  await w.clock.run(0)
  assert.equal(w.reports(), 1, 'a report at start')
  const first = await w.store.get(nodeReportName(self.publicKey))
  assert.equal(first?.version.expiresAtMs, (first?.timestampMs as number) + 3 * TUNING.nodeReportRefreshMs)

  for (let i = 1; i <= 5; i++) { await w.clock.run(i * 100); await file(w, NOW + i) }
  await w.clock.run(999)
  assert.equal(w.reports(), 1, 'no report within the least interval')
  await w.clock.run(1000)
  assert.equal(w.reports(), 2, 'five changes, one report at the end of the interval')
  const report = parseNodeReport(await w.store.readContent(nodeReportName(self.publicKey)) as Uint8Array)
  assert.deepEqual(report.held.map(h => h.name), ['dns/cnames'], 'its own report is not listed')
  assert.equal(report.held[0].timestampMs, NOW + 5)
  assert.equal(report.node, 'web-1')

  await file(w, NOW + 10, stranger)
  await w.clock.run(2000)
  assert.equal(w.reports(), 3)
  const refused = parseNodeReport(await w.store.readContent(nodeReportName(self.publicKey)) as Uint8Array)
  assert.deepEqual(refused.refusals.map(r => [r.name, r.code]), [['dns/cnames', 'ERR_SIGNER_NOT_ALLOWED']])
  assert.deepEqual(refused.refusalCounts, { ERR_SIGNER_NOT_ALLOWED: 1 })

  w.peers.n = 3
  await w.clock.run(3100)
  assert.equal(w.reports(), 4, 'the peer count moving from none is reported')
  await w.clock.run(3100 + TUNING.nodeReportRefreshMs - 200)
  assert.equal(w.reports(), 4)
  await w.clock.run(3100 + TUNING.nodeReportRefreshMs + 100)
  assert.equal(w.reports(), 5, 'refreshed when idle')

  await w.reporter.stop()
  await file(w, NOW + 20)
  await w.clock.run(100_000)
  assert.equal(w.reports(), 5, 'nothing after stop')
})

test('fleet: other nodes from their reports, named by their certificate; an expired one keeps its last cells; a lying peer id is unreadable; a revoked node drops out', async () => {
  const w = world()
  w.reporter.start()
  await w.clock.run(0)
  await file(w, NOW + 1)
  const fleet = createFleet({ store: w.store, acceptor: w.acceptor, reporter: w.reporter, self: { key: self.publicKey, peerId: peerIdOfKey(self.publicKey) }, networkKey: network.publicKey, peerIdOf: peerIdOfKey, nowMs: w.clock.nowMs })
  const otherId = peerIdOfKey(other.publicKey)
  const publish = async (over: Partial<NodeReport>, t: number): Promise<void> => {
    const content = encodeNodeReport({ format: 1, node: 'claimed', peerId: otherId, software: '0.1.0', peers: 1, certificateNotAfterMs: NOW + DAY, refreshMs: TUNING.nodeReportRefreshMs, truncated: false, held: [], refusals: [], refusalCounts: {}, ...over })
    const v = withCertificates(newVersion({ name: nodeReportName(other.publicKey), networkId: NET, privateKey: other.privateKey, signer: other.publicKey, content, timestampMs: t, expiresAtMs: t + 30_000 }), [membership(other, 'web-2').bytes])
    assert.deepEqual(await w.acceptor.ingest(v, content, 'peer'), { ok: true })
  }
  await publish({ held: [] }, w.clock.nowMs())

  let v = await fleet.view({})
  assert.deepEqual(v.nodes.map(n => [n.name, n.heard, n.self]), [['web-1', 'self', true], ['web-2', 'fresh', false]], 'the name is the certificate\'s, not the claimed one')
  assert.deepEqual(Object.values(v.files[0].cells).map(c => c.state), ['latest', 'missing'])

  await w.clock.run(31_000)
  v = await fleet.view({})
  assert.equal(v.nodes[1].heard, 'expired')
  assert.deepEqual(v.notHeardFrom, [otherId])
  assert.equal(v.files[0].cells[otherId].state, 'missing', 'the last report read still speaks')

  await publish({ peerId: peerIdOfKey(stranger.publicKey) }, w.clock.nowMs())
  v = await fleet.view({})
  assert.equal(v.nodes[1].heard, 'unreadable')
  assert.equal(v.files[0].cells[otherId].state, 'unknown')

  w.acceptor.setRevocations({ signers: [], nodes: [{ key: other.publicKey, reason: 'decommissioned', revokedAtMs: NOW }] })
  v = await fleet.view({})
  assert.deepEqual(v.nodes.map(n => n.name), ['web-1'])
  await w.reporter.stop()
})
