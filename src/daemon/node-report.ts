import type { Tuning } from '../config/tuning.js'
import type { SigningKey } from '../crypto/keys.js'
import { describeError } from '../errors.js'
import { withCertificates } from '../format/attachments.js'
import type { Certificate } from '../format/certificate.js'
import { encodeNodeReport, NODE_REPORT_FORMAT, REPORT_ID_HEX, type NodeReport } from '../format/node-report.js'
import { hex, newVersion } from '../format/version.js'
import { isNodeReportName, nodeReportName } from '../policy/node-reports.js'
import type { Store } from '../store/store.js'
import { LOCAL_SOURCE, type Acceptor } from '../sync/acceptor-api.js'
import type { Clock } from '../util/clock.js'
import { byCodeUnits } from '../util/compare.js'
import type { Log } from '../util/log.js'
import { VERSION } from '../cli/help.js'
import { createRefusalLog } from './refusal-log.js'

/*
 * This node's report (docs/PROTOCOL.md section 14): what it holds, its peers,
 * its certificate's end, its software and its recent refusals, signed with
 * its identity key, its membership certificate attached, and handed to the
 * acceptor like any local publish, so it spreads like any file. Published on
 * change at most every nodeReportMinIntervalMs, refreshed every
 * nodeReportRefreshMs, and expiring after REPORT_LIFETIME_REFRESHES of those.
 */

/** A report expires after this many refresh intervals: a node silent that long drops out of date everywhere. */
export const REPORT_LIFETIME_REFRESHES = 3

export interface NodeReporterComponents {
  acceptor: Acceptor
  store: Store
  clock: Clock
  log: Log
  networkId: Uint8Array
  /** The node's identity key, which signs the report. */
  identity: SigningKey
  peerId: string
  /** The node's membership certificate now (it may be renewed by a reload). */
  certificate: () => { cert: Certificate, bytes: Uint8Array }
  /** Admitted peers connected now. */
  peers: () => number
}

export interface NodeReporter {
  /** The report as it would be published now: the fleet view's row for this node. */
  current: () => NodeReport
  start: () => void
  /** Stops the timers and waits for a report being stored. */
  stop: () => Promise<void>
}

/** A move in the peer count worth a report: to or from none, or by a quarter (at least 2). */
function peersMovedNotably (now: number, reported: number): boolean {
  return (now === 0) !== (reported === 0) || Math.abs(now - reported) >= Math.max(2, reported / 4)
}

export function createNodeReporter (c: NodeReporterComponents, tuning: Pick<Tuning, 'nodeReportMinIntervalMs' | 'nodeReportRefreshMs'>): NodeReporter {
  const { acceptor, store, clock, log } = c
  const name = nodeReportName(c.identity.publicKey)
  const refusals = createRefusalLog()
  let running = false
  let lastAt = -Infinity
  let lastTimestampMs = 0
  let reportedPeers = -1
  let inflight: Promise<void> | undefined
  let again = false
  let refusedOwn = ''
  let cancelNext = (): void => {}
  let cancelPeerCheck = (): void => {}

  function current (): NodeReport {
    const held = []
    for (const e of store.entries()) {
      if (isNodeReportName(e.name) || acceptor.held(e.name) === undefined) continue
      held.push({ name: e.name, id: hex(e.id).slice(0, REPORT_ID_HEX), timestampMs: e.timestampMs })
    }
    held.sort((a, b) => byCodeUnits(a.name, b.name))
    return {
      format: NODE_REPORT_FORMAT,
      node: c.certificate().cert.name,
      peerId: c.peerId,
      software: VERSION,
      peers: c.peers(),
      certificateNotAfterMs: c.certificate().cert.notAfterMs,
      refreshMs: tuning.nodeReportRefreshMs,
      held,
      truncated: false,
      refusals: refusals.recent(),
      refusalCounts: refusals.counts()
    }
  }

  function schedule (delayMs: number): void {
    cancelNext()
    cancelNext = clock.after(Math.max(0, delayMs), () => { void publish() })
  }

  /** Something changed: report at once, or when the least interval since the last report is over. */
  function changed (): void {
    if (!running) return
    if (inflight !== undefined) { again = true; return }
    schedule(lastAt + tuning.nodeReportMinIntervalMs - clock.nowMs())
  }

  async function publish (): Promise<void> {
    if (!running || inflight !== undefined) return
    again = false
    inflight = publishOnce().catch(err => log.error({ err: describeError(err) }, 'cannot publish this node\'s report'))
    await inflight
    inflight = undefined
    if (running) schedule(again ? tuning.nodeReportMinIntervalMs : tuning.nodeReportRefreshMs)
  }

  async function publishOnce (): Promise<void> {
    const nowMs = clock.nowMs()
    const own = c.certificate()
    lastAt = nowMs
    // Accepted only while the certificate is valid at signing time: a node whose certificate ended falls silent (and shows as not heard from).
    if (nowMs < own.cert.notBeforeMs || nowMs >= own.cert.notAfterMs) return
    const report = current()
    const content = encodeNodeReport(report)
    // Later than any report before, also one held from an earlier run on a clock that was ahead.
    const timestampMs = Math.max(nowMs, lastTimestampMs + 1, (store.get(name)?.timestampMs ?? 0) + 1)
    const v = withCertificates(newVersion({
      name, networkId: c.networkId, privateKey: c.identity.privateKey, signer: c.identity.publicKey, content, timestampMs,
      expiresAtMs: timestampMs + REPORT_LIFETIME_REFRESHES * tuning.nodeReportRefreshMs
    }), [own.bytes])
    const result = await acceptor.ingest(v, content, LOCAL_SOURCE)
    lastTimestampMs = timestampMs
    reportedPeers = report.peers
    // Said once per reason, not at every refresh.
    if (!result.ok && result.code !== refusedOwn) log.warn({ name, code: result.code }, `this node's report was refused: ${result.reason}`)
    refusedOwn = result.ok ? '' : result.code
  }

  function checkPeers (): void {
    if (!running) return
    if (reportedPeers >= 0 && peersMovedNotably(c.peers(), reportedPeers)) changed()
    cancelPeerCheck = clock.after(tuning.nodeReportMinIntervalMs, checkPeers)
  }

  return {
    current,
    start () {
      running = true
      acceptor.events.on('accepted', ({ entry }) => { if (!isNodeReportName(entry.name)) changed() })
      acceptor.events.on('refused', ({ version, code }) => { if (refusals.record(version, code, clock.nowMs())) changed() })
      acceptor.events.on('revoked', changed)
      acceptor.events.on('changed', changed)
      changed()
      checkPeers()
    },
    async stop () {
      running = false
      cancelNext()
      cancelPeerCheck()
      await inflight
    }
  }
}
